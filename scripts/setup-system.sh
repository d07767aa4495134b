#!/usr/bin/env bash
# Installs the system tools helixdiag's probes and tests use (socat, lsof, PipeWire,
# GStreamer, ffmpeg, tshark). Debian/Ubuntu: apt-get, as root or through sudo. macOS: prints the
# Homebrew equivalents (nothing is installed behind your back). Fast when all is present.
set -euo pipefail

DEBIAN_PACKAGES=(
  socat lsof procps iproute2 tmux openssh-server openssh-client
  dbus pipewire pipewire-bin wireplumber
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  gstreamer1.0-pipewire ffmpeg
  chromium
  tshark
)
BREW_PACKAGES=(socat gstreamer ffmpeg wireshark)

case "$(uname -s)" in
  Darwin)
    missing=()
    for cmd in socat gst-launch-1.0 ffprobe tshark; do
      command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      echo "setup: missing on this Mac: ${missing[*]}"
      echo "setup: install them with:  brew install ${BREW_PACKAGES[*]}"
      echo "setup: (lsof and otool ship with macOS; PipeWire is a guest-side tool and not needed on the host)"
    fi
    exit 0 ;;
  Linux) ;;
  *) echo "setup: unsupported OS $(uname -s); install socat, lsof, GStreamer and ffmpeg by hand" >&2; exit 0 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: not a Debian/Ubuntu system; please install: ${DEBIAN_PACKAGES[*]}" >&2
  exit 0
fi

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1; then
  SUDO=(sudo -n)
else
  echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
  exit 1
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# tshark's package asks whether non-root users may capture; helixdiag only reads captures.
if [[ " ${missing[*]} " == *" tshark "* ]] && command -v debconf-set-selections >/dev/null 2>&1; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | "${SUDO[@]}" debconf-set-selections
fi
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: system packages ready"
