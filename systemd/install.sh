#!/bin/sh
# Builds this checkout and installs it as the iq-hub systemd service:
#   sudo systemd/install.sh [--dry-run] [--config FILE] ...   (all options: --help)
# The options go to systemd/install.ts. --dry-run previews the system changes; the build of
# this checkout (npm ci, tsc) runs either way, since the installer is part of that build.
set -eu

checkout=$(cd "$(dirname "$0")/.." && pwd)

fail() {
  printf 'iq-hub install: %s\n' "$*" >&2
  exit 1
}

node_help="iq-hub needs Node.js 20.19 or newer.
Raspberry Pi OS based on Debian 12 (bookworm) ships Node.js 18, and bookworm-backports has none. Either
  - flash the current Raspberry Pi OS (Debian 13, trixie), whose nodejs is 20.19:
      sudo apt-get install -y nodejs npm
  - or install Node.js 22 from NodeSource:
      curl -fsSL https://deb.nodesource.com/setup_22.x | sudo -E bash -
      sudo apt-get install -y nodejs
then run this again."

command -v node >/dev/null 2>&1 || fail "node not found. $node_help"
command -v npm >/dev/null 2>&1 || fail "npm not found: sudo apt-get install -y npm"
version=$(node --version)
major=${version#v}
major=${major%%.*}
minor=${version#v*.}
minor=${minor%%.*}
if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
  fail "Node.js $version is too old. $node_help"
fi

# In a subshell: a relative --config FILE stays relative to where the owner ran this.
(
  cd "$checkout"
  # The build needs typescript, a devDependency: install everything, build, then drop what only
  # the build needed. Native modules (onoff's epoll, unix-dgram) compile here: build-essential, python3.
  npm ci --no-audit --no-fund
  npm run build
  npm prune --omit=dev --no-audit --no-fund
  # npm skips an optional dependency that fails to compile, but under Type=notify systemd stops
  # a hub that cannot send READY: catch that here rather than in a restart loop.
  node -e 'require("unix-dgram")' 2>/dev/null ||
    fail "unix-dgram (systemd notifications) did not compile: sudo apt-get install -y build-essential python3, then run this again"
)

exec node "$checkout/dist/systemd/install.js" --prefix "$checkout" "$@"
