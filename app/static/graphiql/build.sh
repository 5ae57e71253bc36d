#!/bin/sh
# Rebuild the vendored GraphiQL assets from the npm registry (needs node + npm, nothing else).
#   sh app/static/graphiql/build.sh
# Works in a scratch directory outside the repository; only the browser bundles land here.
set -eu

GRAPHIQL=3.8.3          # same release Strawberry's CDN page uses: UMD build, React 18
EXPLORER=1.0.2          # @graphiql/plugin-explorer
REACT=18.2.0
ESBUILD=0.24.2          # re-minifies graphiql.min.js (upstream ships it unminified, 3.4 MB)

here=$(cd "$(dirname "$0")" && pwd)
out="$here/assets"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cd "$scratch"
npm init -y >/dev/null
npm install --no-audit --no-fund --loglevel=error \
  "graphiql@$GRAPHIQL" "@graphiql/plugin-explorer@$EXPLORER" \
  "react@$REACT" "react-dom@$REACT" "esbuild@$ESBUILD"

m=node_modules
mkdir -p "$out"
cp "$m/react/umd/react.production.min.js" "$out/react.production.min.js"
cp "$m/react-dom/umd/react-dom.production.min.js" "$out/react-dom.production.min.js"
npx esbuild "$m/graphiql/graphiql.min.js" --minify --legal-comments=none --log-level=warning \
  --outfile="$out/graphiql.min.js"
npx esbuild "$m/graphiql/graphiql.min.css" --minify --legal-comments=none --log-level=warning \
  --outfile="$out/graphiql.min.css"
cp "$m/@graphiql/plugin-explorer/dist/index.umd.js" "$out/plugin-explorer.umd.js"
cp "$m/@graphiql/plugin-explorer/dist/style.css" "$out/plugin-explorer.css"
# No source maps are shipped: drop the trailing comments that would make browsers ask for them.
sed -i '/sourceMappingURL=/d' "$out"/*.js "$out"/*.css

{
  echo "Third-party software bundled in app/static/graphiql/assets/."
  echo "graphiql $GRAPHIQL, @graphiql/plugin-explorer $EXPLORER, react $REACT, react-dom $REACT"
  echo "(graphiql.min.js also bundles its own dependencies: graphql-js, codemirror 5,"
  echo "@graphiql/react, @radix-ui, markdown-it and others, all MIT-licensed)."
  for pkg in graphiql @graphiql/plugin-explorer react react-dom; do
    echo
    echo "==== $pkg $(node -p "require('./$m/$pkg/package.json').version") ===="
    if [ -f "$m/$pkg/LICENSE" ]; then cat "$m/$pkg/LICENSE"; else
      echo "License: $(node -p "require('./$m/$pkg/package.json').license")"; fi
  done
} >"$here/NOTICE"

ls -l "$out"
