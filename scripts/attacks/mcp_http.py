"""What the attack scripts share: a POST to /mcp from a chosen loopback
address, and opening a session of a given protocol version. Python's
standard library only; imported by the scripts beside it."""
import http.client
import json


def post(port, body, headers, source, timeout=60):
    """POSTs `body` (as JSON) to /mcp from `source`; the response and its body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, source_address=(source, 0),
                                      timeout=timeout)
    sent = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    sent.update(headers)
    conn.request("POST", "/mcp", body=json.dumps(body), headers=sent)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response, data


def open_session(port, version, source, name):
    """Initializes a session of `version` from `source`; the headers its
    requests carry."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": name, "version": "0"}}}
    response, _ = post(port, init, {"MCP-Protocol-Version": version}, source)
    headers = {"MCP-Protocol-Version": version,
               "Mcp-Session-Id": response.getheader("Mcp-Session-Id")}
    post(port, {"jsonrpc": "2.0", "method": "notifications/initialized"}, headers, source)
    return headers
