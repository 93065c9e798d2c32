//! The delta between two generations of a sorted list: `+value` for what appeared, `-value` for
//! what went, in value order — applied to the older list it gives the newer one exactly.

use std::cmp::Ordering;

/// Walks two ascending, duplicate-free sequences of lines and calls `emit` with each
/// difference: `(true, v)` added in `new`, `(false, v)` removed from `old`, in ascending `v`.
/// Returns how many differences there were. Errors of the readers stop the walk.
pub fn diff<E>(
    mut old: impl Iterator<Item = Result<Vec<u8>, E>>,
    mut new: impl Iterator<Item = Result<Vec<u8>, E>>,
    mut emit: impl FnMut(bool, &[u8]) -> Result<(), E>,
) -> Result<u64, E> {
    let mut count = 0u64;
    let mut a = old.next().transpose()?;
    let mut b = new.next().transpose()?;
    loop {
        match (&a, &b) {
            (None, None) => return Ok(count),
            (Some(x), None) => {
                emit(false, x)?;
                a = old.next().transpose()?;
            }
            (None, Some(y)) => {
                emit(true, y)?;
                b = new.next().transpose()?;
            }
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => {
                    a = old.next().transpose()?;
                    b = new.next().transpose()?;
                    continue;
                }
                Ordering::Less => {
                    emit(false, x)?;
                    a = old.next().transpose()?;
                }
                Ordering::Greater => {
                    emit(true, y)?;
                    b = new.next().transpose()?;
                }
            },
        }
        count = count.saturating_add(1);
    }
}

/// Applies a delta (`+v`/`-v` lines) to an ascending list; the result is ascending (for tests
/// and for clients that rebuild a list).
pub fn apply(old: &[&str], delta: &[&str]) -> Vec<String> {
    let mut set: std::collections::BTreeSet<String> = old.iter().map(|s| (*s).to_owned()).collect();
    for line in delta {
        if let Some(v) = line.strip_prefix('+') {
            set.insert(v.to_owned());
        } else if let Some(v) = line.strip_prefix('-') {
            set.remove(v);
        }
    }
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines<'a>(v: &'a [&'a str]) -> impl Iterator<Item = Result<Vec<u8>, ()>> + 'a {
        v.iter().map(|s| Ok(s.as_bytes().to_vec()))
    }

    fn run(old: &[&str], new: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        let n = diff(lines(old), lines(new), |added, v| {
            out.push(format!(
                "{}{}",
                if added { '+' } else { '-' },
                String::from_utf8_lossy(v)
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(n as usize, out.len());
        out
    }

    #[test]
    fn the_delta_turns_the_old_list_into_the_new_one() {
        let old = ["a1", "b2", "c3", "e5"];
        let new = ["a1", "c3", "d4", "e5", "f6"];
        let d = run(&old, &new);
        assert_eq!(d, ["-b2", "+d4", "+f6"]);
        let ds: Vec<&str> = d.iter().map(String::as_str).collect();
        assert_eq!(apply(&old, &ds), new);
        assert!(run(&new, &new).is_empty());
        assert_eq!(run(&[], &["x"]), ["+x"]);
        assert_eq!(run(&["x"], &[]), ["-x"]);
    }
}
