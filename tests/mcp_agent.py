"""Drives Switchboard's MCP server as an agent would, with the official Python client (PyPI `mcp`), and
prints one JSON report on stdout for tests/mcp_agents.rs to check: the tools listed, and what calls
with wrong arguments and a right one answered.

    mcp_agent.py MODE URL
"""

import asyncio
import json
import sys

from mcp import Client


async def call(client, name, arguments):
    result = await client.call_tool(name, arguments)
    text = result.content[0].text if result.content else None
    return {"is_error": result.is_error, "text": text}


async def main(mode, url):
    report = {}
    async with Client(url, mode=mode) as client:
        tools, cursor = [], None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        report["tools"] = {tool.name: {"description": tool.description, "input": tool.input_schema} for tool in tools}
        intent = "stripe__create_payment_intent"
        report["wrong_type"] = await call(client, intent, {"amount": "ten", "currency": "usd"})
        report["unknown"] = await call(client, intent, {"amount": 1000, "currency": "usd", "injected": "x"})
        report["missing"] = await call(client, intent, {})
        report["right"] = await call(client, intent, {"amount": 1000, "currency": "usd"})
        report["server_tool_method"] = await call(client, "echo", {"endpoint": "/x", "method": "FETCH"})
        report["server_tool_unknown"] = await call(client, "echo", {"endpoint": "/x", "injected": 1})
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
