"""Drives Switchboard's MCP server with the official Python client (PyPI `mcp`) and prints one JSON
report on stdout for tests/mcp_python.rs to check.

    mcp_client.py MODE http URL
    mcp_client.py MODE stdio SWITCHBOARD_BINARY DATA_DIR

MODE is a Client mode: "2026-07-28" (no initialize) or "legacy" (the initialize handshake). Over stdio,
GITHUB_BASE_URL and GITHUB_TOKEN are passed on to the server process.
"""

import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters


def target(kind, args):
    if kind == "http":
        return args[0]
    binary, data = args
    env = {key: os.environ[key] for key in ("GITHUB_BASE_URL", "GITHUB_TOKEN") if key in os.environ}
    return StdioServerParameters(command=binary, args=["mcp", "--all-tools", "--data", data], env=env)


async def call(client, name, arguments):
    result = await client.call_tool(name, arguments)
    text = result.content[0].text if result.content else None
    return {"is_error": result.is_error, "text": text, "structured": result.structured_content}


async def main(mode, kind, args):
    report = {}
    async with Client(target(kind, args), mode=mode) as client:
        report["protocol_version"] = client.protocol_version
        names, cursor, pages = [], None, 0
        while True:
            page = await client.list_tools(cursor=cursor)
            pages += 1
            names += [tool.name for tool in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        report["pages"] = pages
        report["tools"] = names
        report["echo"] = await call(client, "echo", {"endpoint": "/v1/x", "method": "POST", "data": {"n": 1}})
        report["missing_secret"] = await call(client, "stripe__list_customers", {"limit": 3})
        report["operation"] = await call(
            client, "github__list_issues", {"owner": "octo cat", "repo": "hello", "state": "open"}
        )
    print(json.dumps(report))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
