# Sourced by scripts/test and scripts/bench: installs, with apt-get, the Debian packages listed in
# scripts/test.d/*.pkgs whose command (or, for a first field starting with /, file) is missing.
# Lines are `command package`; `#` starts a comment. QOS_SKIP_INSTALL=1 installs nothing.
install_listed_packages() {
  [ "${QOS_SKIP_INSTALL:-0}" = 1 ] && return 0
  local need=() extra cmd pkg
  for extra in scripts/test.d/*.pkgs; do
    [ -f "$extra" ] || continue
    while read -r cmd pkg; do
      [ -n "${cmd:-}" ] && [ "${cmd:0:1}" != "#" ] || continue
      if [ "${cmd:0:1}" = / ]; then [ -e "$cmd" ] || need+=("$pkg")
      else command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg"); fi
    done < "$extra"
  done
  if [ ${#need[@]} -gt 0 ]; then
    printf '\n==> installing: %s\n' "${need[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}
