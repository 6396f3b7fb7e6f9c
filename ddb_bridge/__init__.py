"""The composition root: the `ddb-bridge` command line, the demo, and the wiring that
names connectors. The core (`bridge`) and the connectors (`connectors`) never import it."""
