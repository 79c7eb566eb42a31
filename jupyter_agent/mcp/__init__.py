"""MCP both ways: other MCP servers' tools in the agent (:mod:`.client`), and the agent's tools served over MCP
inside the Jupyter server (:mod:`.server`). Importing this package does not import the ``mcp`` SDK."""
