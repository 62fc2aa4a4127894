"""A real MCP client (the `mcp` Python SDK) driving `kmatrix mcp` over stdio: it starts
the server, initializes, lists the tools and makes the calls given as JSON, printing one
JSON object for orchestrator/tests/mcp.rs. A call `{"poll": "results"}` repeats
`results` until the run it names is no longer running (at most 120 s).

usage: python client.py KMATRIX SPEC CALLS_JSON
"""
import json
import sys
import time

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client


async def main(kmatrix, spec, calls):
    params = StdioServerParameters(command=kmatrix, args=['mcp', '--spec', spec])
    out = {'calls': []}
    async with stdio_client(params) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as s:
            init = await s.initialize()
            out['server'] = init.server_info.name
            out['instructions'] = init.instructions
            tools = await s.list_tools()
            out['tools'] = [
                {
                    'name': t.name,
                    'description': t.description,
                    'read_only': t.annotations.read_only_hint if t.annotations else None,
                    'input': t.input_schema,
                }
                for t in tools.tools
            ]
            for call in calls:
                if 'poll' in call:
                    deadline = time.monotonic() + 120
                    while True:
                        r = await s.call_tool('results', {})
                        doc = json.loads(r.content[0].text)
                        if not doc.get('running') or time.monotonic() > deadline:
                            break
                        await anyio.sleep(1)
                    out['calls'].append({'name': 'results', 'is_error': bool(r.is_error), 'json': doc})
                    continue
                r = await s.call_tool(call['name'], call.get('arguments', {}))
                text = r.content[0].text
                try:
                    doc = json.loads(text)
                except ValueError:
                    doc = None
                out['calls'].append({'name': call['name'], 'is_error': bool(r.is_error), 'text': text, 'json': doc})
    print(json.dumps(out))


anyio.run(main, sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))
