// Command catalog builds the Culvert connector catalog.
//
// It runs `<name> metadata` for every executable named *-source or *-sink in
// the -bin directory, checks each answer (the metadata envelope against an
// embedded JSON Schema, and the connector's option schema against the JSON
// Schema draft 2020-12 meta-schema), and writes into the -out directory:
//
//   - catalog.json: {"connectors": [...]}, one metadata object per connector,
//     sorted by name, indented with two spaces;
//   - README.md: a summary table and, per connector, a table of its options
//     with their flags, types, defaults and descriptions;
//   - site/: the same catalog as a static web site (index.html, app.js,
//     style.css and catalog-data.js holding catalog.json), the catalog pages
//     of culvert serve's web console (package serve/ui), which can be opened
//     from disk without a server.
//
// All files are deterministic: the same connectors give the same bytes. With
// -check nothing is written; the files are generated in memory and compared
// with the ones in -out, which is how CI finds a catalog that was not
// regenerated.
//
// Usage:
//
//	go run ./catalog -bin bin -out catalog
//	go run ./catalog -bin bin -out catalog -check
//
// Exit codes: 0 done (or up to date), 1 a connector failed or the catalog is
// stale, 2 bad usage.
package main
