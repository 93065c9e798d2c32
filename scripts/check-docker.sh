#!/usr/bin/env bash
# Checks the Docker set-up without a Docker engine (scripts/test.sh runs it; no image registry is
# reachable on our machines, so nothing is built here):
#   - every COPY/ADD source of the Dockerfile is tracked by git (a clean clone has it) and not
#     excluded by .dockerignore, which keeps the secrets, target/ and .git out of the context;
#   - the build stage compiles with scripts/build-release.sh, the one release command (also run by
#     scripts/run.sh), with --locked as CI's `cargo test --locked`;
#   - the production build has no cargo feature (no circuit simulator, no bench tools): no default
#     feature, build-release.sh adds none, the Dockerfile's CARGO_FEATURES is empty by default;
#     what runs in simulator mode (scripts/run.sh, the compose service on config/dev.toml) is
#     built with `simulator`; scripts/test.sh tests with every feature and checks the production
#     build (scripts/check-production-build.sh);
#   - the last stage runs as a non-root user with a HEALTHCHECK;
#   - what docker-compose.yml uses exists on a fresh clone or is made by its tkm-init service:
#     build targets, bind mounts, the --config file in the image, and each certs/dev/ and .dev/ file
#     the configuration names (certs/gen-dev-certs.sh, scripts/dev-secrets.sh);
#   - `docker compose config -q`, where a docker CLI with compose exists.
# Exits non-zero naming every check that failed.
set -euo pipefail
cd "$(dirname "$0")/.."

dockerfile=Dockerfile
compose=docker-compose.yml
errors=()
fail() { errors+=("$*"); }

if ! tracked=$(git ls-files 2>/dev/null) || [[ -z $tracked ]]; then
  echo "check-docker: not a git checkout: cannot tell which files a clean clone has" >&2
  exit 1
fi
# True when PATH (a file, or a folder holding files) is tracked by git.
is_tracked() {
  local p=${1#./}
  p=${p%/}
  awk -v p="$p" '$0 == p || index($0, p "/") == 1 { f = 1; exit } END { exit !f }' <<<"$tracked"
}

# The Dockerfile as logical instructions "stage<TAB>KEYWORD<TAB>arguments": continuation lines
# joined, comment lines dropped, stage = the name after AS (or its number).
instructions=$(awk '
  /^[ \t]*#/ { next }
  {
    line = $0
    if (line ~ /\\[ \t]*$/) { sub(/\\[ \t]*$/, "", line); acc = acc line " "; next }
    acc = acc line
    if (acc ~ /^[ \t]*$/) { acc = ""; next }
    sub(/^[ \t]+/, "", acc)
    kw = toupper(acc); sub(/[ \t].*$/, "", kw)
    args = acc; sub(/^[^ \t]+[ \t]*/, "", args)
    if (kw == "FROM") {
      n++; stage = n - 1
      if (match(args, /[ \t][Aa][Ss][ \t]+[^ \t]+/)) {
        stage = substr(args, RSTART, RLENGTH); sub(/^[ \t][Aa][Ss][ \t]+/, "", stage)
      }
    }
    printf "%s\t%s\t%s\n", stage, kw, args
    acc = ""
  }' "$dockerfile")
stages=$(awk -F'\t' '$2 == "FROM" { print $1 }' <<<"$instructions")
build_stage=$(head -n1 <<<"$stages")
last_stage=$(tail -n1 <<<"$stages")

# Patterns of .dockerignore (plain paths only; globs are not compared).
ignored=$(grep -vE '^[[:space:]]*(#|!|$)' .dockerignore 2>/dev/null | sed 's#^/##; s#/$##' || true)
for must in .git target .dev certs/dev; do
  grep -qxF -- "$must" <<<"$ignored" || fail ".dockerignore must exclude $must (secrets, build output or history would enter the build context)"
done

# 1. COPY/ADD sources.
copies=0
image_sources=() # what the stages after the build stage copy from the context
while IFS=$'\t' read -r stage kw args; do
  [[ $kw == COPY || $kw == ADD ]] || continue
  read -ra words <<<"$args"
  srcs=()
  from=""
  for w in "${words[@]}"; do
    case $w in
      --from=*) from=${w#--from=} ;;
      --*) ;;
      *) srcs+=("$w") ;;
    esac
  done
  [[ -n $from ]] && continue # from another stage or image, not from the context
  if [[ ${srcs[0]:-} == \[* ]]; then
    fail "$kw in stage $stage uses the JSON form; write it as: $kw src… dest"
    continue
  fi
  if ((${#srcs[@]} < 2)); then
    fail "$kw $args (stage $stage): needs a source and a destination"
    continue
  fi
  unset 'srcs[-1]' # the destination
  [[ $stage != "$build_stage" ]] && image_sources+=("${srcs[@]}")
  for src in "${srcs[@]}"; do
    copies=$((copies + 1))
    clean=${src#./}
    clean=${clean%/}
    if [[ $src == *://* ]]; then
      fail "$kw $src (stage $stage): fetches from the network; copy tracked files only"
    elif [[ -z $clean || $clean == . ]]; then
      fail "$kw $src (stage $stage) copies the whole build context; name the tracked files it needs"
    elif [[ $clean == *[*?[]* ]]; then
      [[ -n $(git ls-files -- "$clean") ]] || fail "$kw $src (stage $stage): no tracked file matches"
    elif ! is_tracked "$clean"; then
      fail "$kw $src (stage $stage): not in git (\`git ls-files\`), so a clean clone has no $clean and docker build fails"
    fi
    while IFS= read -r pat; do
      [[ -z $pat || $pat == *[*?[]* ]] && continue
      if [[ $clean == "$pat" || $clean == "$pat"/* ]]; then
        fail "$kw $src (stage $stage): excluded from the build context by .dockerignore ($pat)"
      fi
    done <<<"$ignored"
  done
done <<<"$instructions"
((copies > 0)) || fail "$dockerfile: no COPY found (could not read it?)"

# 2. The build stage runs the one release command, with --locked as CI.
build_runs=$(awk -F'\t' -v s="$build_stage" '$1 == s && $2 == "RUN" { print $3 }' <<<"$instructions")
grep -q 'scripts/build-release\.sh' <<<"$build_runs" \
  || fail "the build stage ($build_stage) must build with scripts/build-release.sh (the release command scripts/run.sh runs)"
if grep -qE '(^|[^-])cargo[[:space:]]+(build|install|rustc)' <<<"$(awk -F'\t' '$2 == "RUN" { print $3 }' <<<"$instructions")"; then
  fail "$dockerfile runs cargo itself: build through scripts/build-release.sh only"
fi
grep -qE '^[^#]*cargo build --release --locked' scripts/build-release.sh \
  || fail "scripts/build-release.sh must run \`cargo build --release --locked\` (CI runs \`cargo test --locked\`)"
grep -qE '^[^#]*scripts/build-release\.sh' scripts/run.sh \
  || fail "scripts/run.sh must build with scripts/build-release.sh"
if grep -qE '^[[:space:]]*cargo build --release' scripts/run.sh; then
  fail "scripts/run.sh has its own \`cargo build --release\`: use scripts/build-release.sh"
fi
if grep -E '^[[:space:]]*cargo test' scripts/test.sh | grep -qv -- '--locked'; then
  fail "scripts/test.sh runs \`cargo test\` without --locked: CI and the release build must agree"
fi

# 2b. Cargo features: the production build compiles neither the simulator nor the bench tools.
default_features=$(awk '/^\[features\]/ { f = 1; next } /^\[/ { f = 0 } f && /^default[ \t]*=/' Cargo.toml)
grep -qE 'simulator|bench' <<<"$default_features" \
  && fail "Cargo.toml: the default features include a development tool ($default_features): the production build would compile it"
grep -E '^[^#]*cargo build' scripts/build-release.sh | grep -qE -- '--features|--all-features|(^|[[:space:]])-F' \
  && fail "scripts/build-release.sh adds cargo features itself: with no argument it is the production build"
build_args=$(awk -F'\t' -v s="$build_stage" '$1 == s && $2 == "ARG" { print $3 }' <<<"$instructions")
if ! grep -qxE "CARGO_FEATURES(=(\"\"|''))?" <<<"$build_args"; then
  fail "the build stage ($build_stage) must declare ARG CARGO_FEATURES with an empty default (the production image has no feature)"
fi
grep 'scripts/build-release\.sh' <<<"$build_runs" | grep -qE '\$\{?CARGO_FEATURES' \
  || fail "the build stage ($build_stage) must pass \$CARGO_FEATURES to scripts/build-release.sh"
grep -qE '^[^#]*scripts/build-release\.sh.*--features[= ]+[^ ]*simulator' scripts/run.sh \
  || fail "scripts/run.sh runs config/dev.toml (simulator mode): it must build with --features simulator"
if grep -E '^[[:space:]]*cargo test' scripts/test.sh | grep -qv -- '--all-features'; then
  fail "scripts/test.sh runs \`cargo test\` without --all-features: the targets that need the simulator or bench would silently not be built or run"
fi
grep -qE '^[^#]*scripts/check-production-build\.sh' scripts/test.sh \
  || fail "scripts/test.sh must run scripts/check-production-build.sh (no simulator or bench code in production)"

# 3. The image: non-root, with a health check.
user=$(awk -F'\t' -v s="$last_stage" '$1 == s && $2 == "USER" { u = $3 } END { print u }' <<<"$instructions")
[[ -n $user && ! $user =~ ^(root|0)(:|$) ]] \
  || fail "the last stage ($last_stage) must set USER to a non-root user"
awk -F'\t' -v s="$last_stage" '$1 == s && $2 == "HEALTHCHECK"' <<<"$instructions" | grep -q '/health/ready' \
  || fail "the last stage ($last_stage) must have a HEALTHCHECK on /health/ready"

# 4. docker-compose.yml: per service, its build target, mounts, environment names and command
# (read from the file's two-space layout; `docker compose config` below validates the file itself).
compose_facts=$(awk '
  /^[^ #]/ { top = $1 }
  top == "services:" && /^  [A-Za-z0-9_.-]+:[ \t]*$/ { svc = $1; sub(/:$/, "", svc); sect = ""; next }
  top != "services:" || svc == "" { next }
  /^    [a-z_]+:/ { sect = $1; sub(/:.*$/, "", sect); bsub = "" }
  /^    build:[ \t]*[^ \t#]/ { print "T\t" svc "\t(last)" } # `build: .` makes the last stage
  /^      target:/ && sect == "build" { print "T\t" svc "\t" $2 }
  sect == "build" && /^      [a-z_]+:/ { bsub = $1; sub(/:.*$/, "", bsub) }
  sect == "build" && bsub == "args" && /^        (- )?[A-Za-z_][A-Za-z0-9_]*[:=]/ {
    a = $0; sub(/^        (- )?/, "", a); sub(/[ \t]+#.*$/, "", a)
    k = a; sub(/[:=].*$/, "", k); v = a; sub(/^[^:=]*[:=][ \t]*/, "", v); gsub(/["\047]/, "", v)
    print "A\t" svc "\t" k "\t" v
  }
  sect == "volumes" && /^      - / {
    v = $0; sub(/^      - /, "", v); gsub(/"/, "", v); n = split(v, p, ":")
    print "M\t" svc "\t" p[1] "\t" p[2] "\t" (n > 2 ? p[3] : "rw")
  }
  sect == "environment" && /^      [A-Z0-9_]+:/ {
    e = $1; sub(/:$/, "", e); v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+#.*$/, "", v); gsub(/"/, "", v)
    print "E\t" svc "\t" e "\t" v
  }
  sect == "command" { print "C\t" svc "\t" $0 }' "$compose")
[[ -n $compose_facts ]] || fail "$compose: no services found (could not read it?)"
compose_facts=${compose_facts//$'\t(last)'/$'\t'$last_stage}
while IFS=$'\t' read -r kind svc a _; do
  case $kind in
    T) grep -qxF -- "$a" <<<"$stages" || fail "$compose: $svc builds target $a, which $dockerfile does not define" ;;
    M) if [[ $a == .* || $a == /* || $a == "~"* ]]; then
         is_tracked "$a" || fail "$compose: $svc bind-mounts $a, which a fresh clone does not have (make it in the tkm-init service instead)"
       fi ;;
  esac
done <<<"$compose_facts"

# The configuration tkm is started with is in the image.
svc_of_target() { awk -F'\t' -v t="$1" '$1 == "T" && $3 == t { print $2 }' <<<"$compose_facts"; }
tkm_svc=$(svc_of_target "$last_stage")
init_svc=$(svc_of_target dev-init)
[[ -n $tkm_svc ]] || fail "$compose: no service builds the runtime stage ($last_stage)"
[[ -n $init_svc ]] || fail "$compose: no service builds the dev-init stage (it makes the dev secrets)"
cfg=$(awk -F'\t' -v s="$tkm_svc" '$1 == "C" && $2 == s' <<<"$compose_facts" | grep -oE '/app/[^" ,]+\.toml' | head -n1 || true)
if [[ -n $cfg ]]; then
  rel=${cfg#/app/}
  is_tracked "$rel" || fail "$compose: $tkm_svc is given $cfg, but $rel is not in git"
  in_image=0
  for src in "${image_sources[@]}"; do
    src=${src#./}
    src=${src%/}
    [[ $rel == "$src" || $rel == "$src"/* ]] && in_image=1
  done
  ((in_image)) || fail "$compose: $tkm_svc is given $cfg, which $dockerfile does not copy into the image"
fi

# The cargo features of each service's image: the circuits mode tkm runs needs them, and every
# service builds the same build stage (different arguments would compile it twice, differently).
features_of() { awk -F'\t' -v s="$1" '$1 == "A" && $2 == s && $3 == "CARGO_FEATURES" { print $4 }' <<<"$compose_facts"; }
mode_in() {
  awk '/^[ \t]*\[/ { sec = $0; sub(/#.*$/, "", sec); gsub(/[][ \t]/, "", sec); next }
    sec == "circuits" && /^[ \t]*mode[ \t]*=/ {
      v = $0; sub(/^[^=]*=[ \t]*/, "", v); sub(/[ \t]*#.*$/, "", v); gsub(/"/, "", v); m = v
    }
    END { print m }' "$1"
}
if [[ -n $tkm_svc ]]; then
  mode=$(mode_in config/default.toml)
  if [[ -n ${rel:-} && -f ${rel:-} ]]; then
    m=$(mode_in "$rel")
    [[ -z $m ]] || mode=$m
  fi
  m=$(awk -F'\t' -v s="$tkm_svc" '$1 == "E" && $2 == s && $3 == "TKM__CIRCUITS__MODE" { print $4 }' <<<"$compose_facts")
  [[ -z $m ]] || mode=$m
  tkm_features=$(features_of "$tkm_svc")
  if [[ $mode == simulator && ",${tkm_features// /,}," != *,simulator,* ]]; then
    fail "$compose: $tkm_svc runs circuits.mode = \"simulator\" (${cfg:-the defaults}) but builds without the cargo feature simulator (build args: CARGO_FEATURES), so tkm refuses to start"
  fi
  for svc in $(awk -F'\t' '$1 == "T" { print $2 }' <<<"$compose_facts" | sort -u); do
    f=$(features_of "$svc")
    [[ $f == "$tkm_features" ]] \
      || fail "$compose: $svc builds with CARGO_FEATURES '$f' but $tkm_svc with '$tkm_features': the build stage would be compiled twice, differently"
  done
fi

# Each certs/dev/ and .dev/ file the configuration names: read from a volume that tkm-init writes
# and that tkm mounts, and made by the dev scripts, unless compose points that setting elsewhere.
needed=$(cat config/default.toml config/dev.toml | awk '
  /^[ \t]*#/ { next }
  /^[ \t]*\[/ { sec = $0; gsub(/[][ \t]/, "", sec); sub(/#.*$/, "", sec); next }
  {
    line = $0; sub(/[ \t]#.*$/, "", line)
    key = line; sub(/[ \t]*=.*$/, "", key); gsub(/[ \t]/, "", key)
    while (match(line, /"(certs\/dev|\.dev)\/[^"]*"/)) {
      env = "TKM__" toupper(sec) "__" toupper(key); gsub(/\./, "__", env)
      print env "\t" substr(line, RSTART + 1, RLENGTH - 2)
      line = substr(line, RSTART + RLENGTH)
    }
  }' | sort -u)
init_cmd=$(awk -F'\t' '$1 == "dev-init" && ($2 == "CMD" || $2 == "ENTRYPOINT") { print $3 }' <<<"$instructions")
grep -q 'gen-dev-certs\.sh' <<<"$init_cmd" || fail "the dev-init stage must run certs/gen-dev-certs.sh"
grep -qE 'dev-secrets\.sh [^ "&;]' <<<"$init_cmd" \
  || fail "the dev-init stage must run scripts/dev-secrets.sh with tkm's path (else no PGP key pair)"
[[ -n $tkm_svc && -n $init_svc ]] || needed="" # nothing to compare them with
while IFS=$'\t' read -r env path; do
  [[ -n $path ]] || continue
  if awk -F'\t' -v s="$tkm_svc" -v e="$env" '$1 == "E" && $2 == s && $3 == e { f = 1 } END { exit !f }' <<<"$compose_facts"; then
    continue # compose sets it: not read from the volume
  fi
  dir=${path%/*}
  name=${path##*/}
  [[ $path == .dev/* ]] && dir=.dev
  [[ $path == certs/dev/* ]] && dir=certs/dev
  vol=$(awk -F'\t' -v s="$tkm_svc" -v d="/app/$dir" '$1 == "M" && $2 == s && $4 == d { print $3 }' <<<"$compose_facts")
  if [[ -z $vol ]]; then
    fail "$compose: $tkm_svc reads $path ($env) but mounts nothing on /app/$dir"
  elif ! awk -F'\t' -v s="$init_svc" -v v="$vol" -v d="/app/$dir" \
      '$1 == "M" && $2 == s && $3 == v && $4 == d && $5 != "ro" { f = 1 } END { exit !f }' <<<"$compose_facts"; then
    fail "$compose: the volume $vol on /app/$dir is not written by $init_svc, so $path is never made"
  fi
  case $dir in
    certs/dev) grep -qF -- "$name" certs/gen-dev-certs.sh || fail "$path ($env) is not made by certs/gen-dev-certs.sh" ;;
    .dev) grep -qF -- "\$dev/$name" scripts/dev-secrets.sh || fail "$path ($env) is not made by scripts/dev-secrets.sh" ;;
  esac
done <<<"$needed"

# 5. docker compose config, where the CLI has compose.
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  if out=$(docker compose -f "$compose" config -q 2>&1); then
    echo "check-docker: docker compose config: valid"
  else
    fail "docker compose config: $out"
  fi
else
  echo "check-docker: no docker CLI with compose here: skipped \`docker compose config\`"
fi

if ((${#errors[@]} > 0)); then
  printf 'check-docker: FAILED: %s\n' "${errors[@]}" | awk '!seen[$0]++' >&2
  exit 1
fi
echo "check-docker: ok ($copies COPY sources tracked, release build shared and --locked, production without dev features, compose inputs present or generated)"
