#!/bin/sh
# An example strata-agent hook (installed in the guest's hook folder, /etc/strata/hooks). It runs with
# "freeze" before the file systems freeze and with "thaw" after they thaw; a non-zero exit at freeze
# refuses the freeze. A database would flush and hold here; this one appends a line to
# $STRATA_HOOK_LOG (which the VM tests read from the data disk) and says so on the console.
set -e
case "$1" in
    freeze | thaw) ;;
    *) echo "10-example.sh: unknown phase '$1'" >&2; exit 2 ;;
esac
if [ -n "${STRATA_HOOK_LOG:-}" ]; then
    echo "hook $1" >> "$STRATA_HOOK_LOG"
    sync "$STRATA_HOOK_LOG"
fi
echo "strata-guest: hook $1" > /dev/console
