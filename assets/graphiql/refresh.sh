#!/usr/bin/env bash
# Refreshes the vendored GraphiQL page assets from npm at the pinned versions below. The
# gateway embeds these files (src/server/graphiql.rs), so `cargo build` needs nothing but
# crates and the page works with no internet. GraphiQL 3 is the last major with a UMD build.
set -euo pipefail
GRAPHIQL=3.9.0
REACT=18.3.1
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error \
  "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT" >/dev/null)
m="$work/node_modules"
cp "$m/graphiql/graphiql.min.js" "$m/graphiql/graphiql.min.css" "$here/"
cp "$m/react/umd/react.production.min.js" "$m/react-dom/umd/react-dom.production.min.js" "$here/"
cp "$m/graphiql/LICENSE" "$here/LICENSE.graphiql"
cp "$m/react/LICENSE" "$here/LICENSE.react"
cp "$m/react-dom/LICENSE" "$here/LICENSE.react-dom"
printf 'graphiql %s\nreact %s\nreact-dom %s\n' "$GRAPHIQL" "$REACT" "$REACT" > "$here/VERSIONS"
echo "refreshed: graphiql $GRAPHIQL, react $REACT"
