#!/bin/sh
# An example strata-agent hook (installed in the guest's hook folder, /etc/strata/hooks). It runs with
# "freeze" before the file systems freeze and with "thaw" after they thaw; a non-zero exit at freeze
# refuses the freeze. A database would flush and hold here; this one leaves a marker the VM tests read.
set -e
case "$1" in
    freeze) echo "hook freeze $(date +%s)" >> /run/strata-hooks.log ;;
    thaw) echo "hook thaw $(date +%s)" >> /run/strata-hooks.log ;;
esac
echo "strata-guest: hook $1" > /dev/console
