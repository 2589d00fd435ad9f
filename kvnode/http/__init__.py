"""Everything the node serves over HTTP with aiohttp: the app and its middleware (`app`),
one module per route family (`txn`, `lease`, `members`, `watch`), request parsing
(`request`) and the connection guard (`guard`). Nothing else in kvnode imports
`aiohttp.web`, except `kvnode.server`, which assembles the node."""
