#!/usr/bin/env bash
# Installs what the project needs beyond the Rust toolchain, from Debian's
# packages: Python 3 (the independent reference implementation the tests
# compare against), the fonts letters embed (DejaVu for Latin scripts, Noto
# CJK for Chinese) and poppler-utils (pdftotext/pdfinfo, which the tests use
# to read the letters back), and aiosmtpd (the real SMTP server the e-mail
# delivery tests start on loopback, run with Debian's /usr/bin/python3),
# and Chromium (the headless browser the report test renders report.html
# in); plus the rustfmt and clippy components.
# Safe to run again: it installs only what is missing.
set -euo pipefail
missing=()
command -v python3 >/dev/null || missing+=(python3)
command -v pdftotext >/dev/null || missing+=(poppler-utils)
command -v openssl >/dev/null || missing+=(openssl)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || missing+=(fonts-noto-cjk)
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || missing+=(python3-aiosmtpd)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install: ${missing[*]}" >&2
    exit 1
  fi
fi
if command -v rustup >/dev/null; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
