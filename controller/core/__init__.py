"""The pure core: the flow model, engine, nodes, ring strategies and outcomes.

No I/O: nothing here imports asyncio, aiohttp or redis."""
