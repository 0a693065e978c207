#!/usr/bin/env bash
# Debian packages the tests and the demo use: PostgreSQL (a real server for the SQL tests), OpenSSH (a real SFTP
# server), poppler-utils (reading PDFs back), Chromium and its driver (the console's browser tests; never a downloaded
# browser). Installs only what is missing; needs root (or passwordless sudo).
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo -n)
else
  echo "missing Debian packages: ${need[*]} (run as root or install them: apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
# policy-rc.d keeps the packages' own service start-up out of the way: tests start their own servers.
"${as_root[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
"${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
"${as_root[@]}" rm -f /usr/sbin/policy-rc.d
