#!/usr/bin/env bash
# Extract every marked message into engine/locale/tanren.pot, merge it into each language's .po,
# and compile the .mo files tanren loads (committed: running tanren needs only gettext).
# After it, translate the new or fuzzy entries in the .po files and run it again.
set -euo pipefail
cd "$(dirname "$0")/.."
pybabel=${VENV:-.venv}/bin/pybabel
locale=engine/locale
"$pybabel" extract --mapping-file babel.cfg -k N_ -k phrase -k ngettext:1,2 --no-location --sort-output \
    --project tanren --omit-header --output-file "$locale/tanren.pot" engine tui export evals
for po in "$locale"/*/LC_MESSAGES/tanren.po; do
    "$pybabel" update --input-file "$locale/tanren.pot" --output-file "$po" --no-fuzzy-matching --ignore-obsolete \
        --width 120 --locale "$(basename "$(dirname "$(dirname "$po")")")"
done
"$pybabel" compile --directory "$locale" --domain tanren --statistics
