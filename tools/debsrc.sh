# shellcheck shell=bash
# Sourced by tools/realkube/build.sh and tools/cri/build.sh: the deb-src entries `apt-get source` needs.
# Debian images ship `Types: deb` only; this writes /etc/apt/sources.list.d/kruisebus-deb-src.sources
# (the same file for both builds) when no deb-src entry exists yet.
#
# ensure_deb_src: returns 0 after writing the file (the caller then runs `apt-get update`), 1 when deb-src
# entries were already there.
ensure_deb_src() {
  local sources=/etc/apt/sources.list.d/kruisebus-deb-src.sources suite entry
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    return 1
  fi
  suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
  entry="Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg"
  if [ "$(id -u)" -eq 0 ]; then echo "$entry" > "$sources"; else echo "$entry" | sudo -n tee "$sources" >/dev/null; fi
  return 0
}
