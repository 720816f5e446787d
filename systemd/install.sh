#!/bin/sh
# Builds this checkout as an unprivileged user, installs the result root-owned into the prefix
# (/opt/iq-hub), and hands over to the prefix's dist/systemd/install.js for the system changes
# (service user, config, config.txt, unit, the iq command). All options: --help.
#
# Why this shape: npm runs the install scripts of dependencies, and root must never run code that
# a package author or an unprivileged user could change. So npm runs as the owner of the checkout
# (or $IQ_HUB_BUILD_USER), with install scripts only for the native modules listed in
# package.json's "allowScripts"; what root runs afterwards is a copy nobody else can write to.
# --dry-run and --help change nothing, in the checkout or anywhere else.
set -eu

checkout=$(cd "$(dirname "$0")/.." && pwd)

usage() {
  cat <<'EOF'
Usage: sudo systemd/install.sh [options]

Builds this checkout as an unprivileged user (npm ci --ignore-scripts, then npm rebuild of the
native modules only), installs it root-owned into the prefix, and installs iq-hub as a systemd
service. Safe to run again: it rebuilds only when the checkout changed, and changes only what differs.

Options:
  --dry-run        print what would be built and every change and command; make none
  --root DIR       install into the tree DIR instead of / (commands are printed, not run)
  --prefix DIR     where the built hub is installed, root-owned (default /opt/iq-hub)
  --config FILE    take the pins from FILE and install it as /etc/iq-hub/config.json if that is
                   absent (default: keep /etc/iq-hub/config.json, or write the defaults)
  --node PATH      node for ExecStart and the iq command (default: the node on PATH)
  --lan-broker     also set up mosquitto (from Debian) as the broker for phones and laptops on the
                   LAN: TLS on port 8883 with a CA made on this Pi, a password per party, an ACL;
                   the hub uses it. Then: sudo iq-hub party add NAME (see README)
  --help           print this help

Environment:
  IQ_HUB_BUILD_USER   who builds (default: the owner of the checkout, else $SUDO_USER; never root)
EOF
}

fail() {
  printf 'iq-hub install: %s\n' "$*" >&2
  exit 1
}

# The options this script needs itself; every option also goes on to install.js unchanged.
dry_run=no
root=/
prefix=/opt/iq-hub
expect=
for arg do
  if [ -n "$expect" ]; then
    eval "$expect=\$arg"
    expect=
    continue
  fi
  case $arg in
    --help | -h) usage; exit 0 ;;
    --dry-run) dry_run=yes ;;
    --lan-broker) ;;
    --root) expect=root ;;
    --prefix) expect=prefix ;;
    --node | --config) expect=ignored ;;
    --root=*) root=${arg#*=} ;;
    --prefix=*) prefix=${arg#*=} ;;
    --node=* | --config=*) ;;
    *) fail "unknown option $arg (see --help)" ;;
  esac
done
[ -z "$expect" ] || fail "an option needs a value (see --help)"

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

if [ "$root" = / ] && [ "$dry_run" = no ] && [ "$(id -u)" != 0 ]; then
  fail "run it as root (sudo systemd/install.sh), or look first with --dry-run"
fi
case $prefix in /*) ;; *) fail "--prefix $prefix: give an absolute path" ;; esac
[ -d "$root" ] || fail "--root $root: no such directory"
root=$(cd "$root" && pwd)
if [ "$root" = / ]; then target=$prefix; else target=$root$prefix; fi
if [ "$(cd "$target" 2>/dev/null && pwd -P)" = "$(cd "$checkout" && pwd -P)" ]; then
  fail "this checkout is the install prefix $prefix, which the installer replaces with a root-owned build.
Clone it elsewhere as yourself and install from there:
  git clone $checkout ~/iq-hub && cd ~/iq-hub && sudo systemd/install.sh"
fi

# The sources, without what a build or a run leaves behind: what is built, and what the stamp covers.
source_tar() {
  tar -C "$checkout" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    --exclude=./.git --exclude=./node_modules --exclude=./dist --exclude=./coverage --exclude=./state \
    --exclude=./.iq --exclude=./tmp --exclude='*.key' --exclude='*.tsbuildinfo' -cf - .
}

# Same sources, node and machine: same build. A second run then rebuilds and copies nothing.
stamp=$({ node --version; npm --version; uname -m; source_tar; } | sha256sum | cut -d' ' -f1)
installed_stamp=$(cat "$target/.iq-hub-build" 2>/dev/null || true)

if [ "$(id -u)" = 0 ]; then
  builder=${IQ_HUB_BUILD_USER:-}
  if [ -z "$builder" ]; then
    builder=$(stat -c %U "$checkout")
    if [ "$builder" = root ]; then builder=${SUDO_USER:-root}; fi
  fi
  id -u "$builder" >/dev/null 2>&1 || fail "build user $builder does not exist"
  [ "$(id -u "$builder")" != 0 ] ||
    fail "npm must not run as root here. Clone the repository as your own user (not with sudo) and run this from there, or set IQ_HUB_BUILD_USER"
else
  builder=$(id -un)
fi

# npm's headers: Debian's node has them in /usr/include/node; without this node-gyp downloads them from nodejs.org.
nodedir=
if [ -d /usr/include/node ]; then nodedir=/usr; fi
natives=$(node -p 'Object.keys(require(process.argv[1]).allowScripts ?? {}).join(" ")' "$checkout/package.json")
build_steps="npm ci --ignore-scripts; npm rebuild $natives; npm run build; npm prune --omit=dev --ignore-scripts"

if [ "$stamp" = "$installed_stamp" ]; then
  echo "build: $target is up to date with this checkout"
elif [ "$dry_run" = yes ]; then
  echo "would build a copy of $checkout as $builder${nodedir:+ (npm_config_nodedir=$nodedir)}: $build_steps"
  echo "would install the build into $target (owned by root, writable by root only)"
else
  # Runs a command as the build user; this script already is one when not started as root.
  as_builder() {
    if [ "$(id -u)" = 0 ]; then runuser -u "$builder" -- "$@"; else "$@"; fi
  }
  staging=$(as_builder mktemp -d "${TMPDIR:-/tmp}/iq-hub-build.XXXXXX")
  # Removed on failure here, on success after the copy (exec below would skip an EXIT trap).
  trap 'rm -rf "$staging"' EXIT
  home=$(getent passwd "$builder" | cut -d: -f6)
  # npm needs a writable home for its cache; a system user has none.
  if [ -z "$home" ] || ! as_builder test -w "$home"; then
    home=$staging/.home
    as_builder mkdir "$home"
  fi
  echo "building a copy of $checkout as $builder: $build_steps"
  source_tar | as_builder tar -C "$staging" -xf -
  # A clean environment: root's npm_config_* (cache, userconfig) must not reach the build; the
  # build user's own ~/.npmrc applies. Proxies pass, for sites that need one.
  proxies=$(env | grep -iE '^(https?|no)_proxy=' || true)
  # $proxies unquoted on purpose: one NAME=value per word.
  as_builder env -i HOME="$home" PATH="$PATH" LANG=C.UTF-8 $proxies ${nodedir:+npm_config_nodedir=$nodedir} sh -euc '
    cd "$1"
    shift
    npm ci --ignore-scripts --no-audit --no-fund
    npm rebuild "$@"
    npm run build
    npm prune --omit=dev --ignore-scripts --no-audit --no-fund
    # npm skips an optional dependency that fails to compile, but under Type=notify systemd stops
    # a hub that cannot send READY: catch that here rather than in a restart loop.
    node -e "require(\"unix-dgram\")" 2>/dev/null || {
      echo "unix-dgram (systemd notifications) did not compile: sudo apt-get install -y build-essential python3, then run this again" >&2
      exit 1
    }
  ' sh "$staging" $natives

  echo "installing the build into $target"
  mkdir -p "$(dirname "$target")"
  rm -rf "$target.iq-hub-new" "$target.iq-hub-old"
  mkdir "$target.iq-hub-new"
  (cd "$staging" && tar -cf - package.json package-lock.json bin dist node_modules systemd) |
    tar -C "$target.iq-hub-new" --no-same-owner --no-same-permissions -xf -
  echo "$stamp" >"$target.iq-hub-new/.iq-hub-build"
  # Root runs this code (the unit, this installer): only root may change it.
  chmod -R go-w "$target.iq-hub-new"
  chmod 755 "$target.iq-hub-new"
  if [ -e "$target" ]; then mv "$target" "$target.iq-hub-old"; fi
  mv "$target.iq-hub-new" "$target"
  rm -rf "$target.iq-hub-old" "$staging"
  trap - EXIT
fi

# The system changes: by the installed copy, or in a dry run by whichever build exists.
installer=$target/dist/systemd/install.js
if [ "$dry_run" = yes ] && [ "$stamp" != "$installed_stamp" ]; then installer=$checkout/dist/systemd/install.js; fi
if [ ! -f "$installer" ]; then
  echo "the list of system changes comes from the build, which does not exist yet:"
  echo "  run npm ci in $checkout as yourself (it builds), then this again with --dry-run"
  exit 0
fi
exec node "$installer" --prefix "$prefix" "$@"
