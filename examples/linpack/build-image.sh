#!/usr/bin/env bash
# Builds the static `linpack` binary and the local Docker image qos-linpack:latest, with no
# registry: the binary and a static busybox are copied into a temporary root filesystem, which
# is `docker import`ed.
#
#   bash examples/linpack/build-image.sh                 # build binary + image qos-linpack:latest
#   bash examples/linpack/build-image.sh --binary-only   # static binary only (no Docker needed)
#   bash examples/linpack/build-image.sh --tag NAME:TAG  # another image name
#   bash examples/linpack/build-image.sh --no-smoke      # skip the `docker run` smoke test
#
# Docker: uses DOCKER_HOST when set (e.g. `eval "$(bash scripts/docker-daemon start)"`), else the
# client's default. Fails at once, with a message, when no daemon answers.
# Static build: the x86_64-unknown-linux-gnu target that rustup installs with the toolchain,
# with RUSTFLAGS="-C target-feature=+crt-static" (glibc's libc.a from libc6-dev; nothing else).
# Busybox: /bin/busybox from Debian's busybox-static, installed with apt-get when missing
# (QOS_SKIP_INSTALL=1 forbids that).
# Prints the binary's path (and the image name) on stdout; progress goes to stderr.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
TARGET=x86_64-unknown-linux-gnu
TAG=qos-linpack:latest
BINARY_ONLY=0
SMOKE=1

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary-only) BINARY_ONLY=1 ;;
    --tag) [ $# -ge 2 ] || die "--tag needs a value"; TAG="$2"; shift ;;
    --tag=*) TAG="${1#--tag=}" ;;
    --no-smoke) SMOKE=0 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done

docker_ok() { timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# --- fail fast when the image cannot be built ---------------------------------------------
if [ "$BINARY_ONLY" = 0 ]; then
  command -v docker >/dev/null 2>&1 || die "the docker client is not installed (apt-get install docker.io)"
  if ! docker_ok; then
    die "no Docker daemon reachable at ${DOCKER_HOST:-the default socket (unix:///var/run/docker.sock)}.
  Start the project's private daemon and export its socket first:
    eval \"\$(bash scripts/docker-daemon start)\"
  or build only the static binary with --binary-only."
  fi
fi

# --- the static binary -------------------------------------------------------------------
rustup target list --installed 2>/dev/null | grep -qx "$TARGET" \
  || say "warning: rustup does not list $TARGET as installed; trying anyway"
say "building the static binary (cargo build --release -p linpack --target $TARGET, +crt-static)"
(
  cd "$repo"
  RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
    cargo build --release --locked -p linpack --target "$TARGET" >&2
)
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
case "$target_dir" in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
bin="$target_dir/$TARGET/release/linpack"
[ -x "$bin" ] || die "cargo did not produce $bin"
if ldd "$bin" 2>&1 | grep -q '=>'; then
  die "$bin is dynamically linked: $(ldd "$bin" 2>&1 | tr '\n' ' ')"
fi
"$bin" 64 --threads 1 >/dev/null || die "$bin fails its own 64x64 solve"
say "static binary ok: $bin ($(du -h "$bin" | cut -f1))"
if [ "$BINARY_ONLY" = 1 ]; then
  echo "$bin"
  exit 0
fi

# --- busybox -------------------------------------------------------------------------------
bb=/bin/busybox
static_file() { [ -x "$1" ] && ! ldd "$1" 2>&1 | grep -q '=>'; }
if ! static_file "$bb"; then
  [ "${QOS_SKIP_INSTALL:-0}" = 1 ] && die "no static $bb and QOS_SKIP_INSTALL=1 (apt-get install busybox-static)"
  [ "$(id -u)" = 0 ] || die "installing busybox-static needs root"
  say "installing busybox-static (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends busybox-static >&2 \
    || die "apt-get install busybox-static failed"
  static_file "$bb" || die "$bb is still missing or dynamically linked"
fi

# --- root filesystem -----------------------------------------------------------------------
rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/ckpt"
chmod 1777 "$rootfs/tmp"
cp "$bb" "$rootfs/bin/busybox"
for app in sh ash date hostname wget sleep cat echo env ls mkdir rm kill ps nproc printf test \
           true false seq grep sed awk tee head tail wc timeout; do
  ln -s busybox "$rootfs/bin/$app"
done
# The debug line tables make the binary ~3x larger; the image does not need them.
if command -v objcopy >/dev/null 2>&1; then
  objcopy --strip-debug "$bin" "$rootfs/bin/linpack"
else
  cp "$bin" "$rootfs/bin/linpack"
fi
# The thesis' job files run `/linpack_openmp N`: keep that name working.
ln -s bin/linpack "$rootfs/linpack_openmp"
ln -s bin/linpack "$rootfs/linpack"
printf 'root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"

say "importing $TAG (DOCKER_HOST=${DOCKER_HOST:-default})"
tar --owner=0 --group=0 --numeric-owner -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/bin' \
  --change 'WORKDIR /' \
  --change 'ENTRYPOINT []' \
  --change 'CMD ["/bin/linpack", "--help"]' \
  --message "qos-elastic LINPACK ($(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo unknown))" \
  - "$TAG" >/dev/null

if [ "$SMOKE" = 1 ]; then
  say "smoke test: docker run --rm --network none $TAG /linpack_openmp 100"
  out="$(docker run --rm --network none "$TAG" /linpack_openmp 100 --threads 1 -o json)" \
    || die "the image does not run: $out"
  case "$out" in *'"passed":true'*) ;; *) die "unexpected smoke-test output: $out" ;; esac
fi
say "built $TAG"
echo "$bin"
echo "$TAG"
