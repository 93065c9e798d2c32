//! Message protection of each circuit's API, pure functions over openssl primitives.
