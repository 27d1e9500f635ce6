// A real OAuth 2.1 / OpenID provider (npm oidc-provider) on loopback for the
// OAuth tests: client-credentials clients, resource indicators (RFC 8707)
// issuing JWT access tokens (RFC 9068) for one resource, introspection.
//
//   PROVIDER_KEYS=a=key_a.pem,b=key_b.pem  signing keys (P-256 PEM), by kid;
//                                          the first signs
//   RESOURCE=http://127.0.0.1:PORT/mcp     the MCP server's resource URL
//   PORT=0                                 where to listen (0: any free port)
//
// Prints "listening on http://127.0.0.1:PORT" once it serves.
import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

const { default: Provider, errors } = await import(
  `${process.env.OIDC_PROVIDER_MODULES}/oidc-provider/lib/index.js`
);

const resource = process.env.RESOURCE;
const keys = process.env.PROVIDER_KEYS.split(',').map((entry) => {
  const [kid, path] = entry.split('=');
  const jwk = createPrivateKey(readFileSync(path)).export({ format: 'jwk' });
  return { ...jwk, kid, alg: 'ES256', use: 'sig' };
});

const server = createServer();
await new Promise((done) => server.listen(Number(process.env.PORT || 0), '127.0.0.1', done));
const issuer = `http://127.0.0.1:${server.address().port}`;

const client = (id, scope) => ({
  client_id: id,
  client_secret: `${id}-secret-0123456789abcdef`,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: 'client_secret_basic',
  scope,
});

const provider = new Provider(issuer, {
  jwks: { keys },
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  clients: [
    client('writer', 'mcp:read mcp:write'),
    client('reader', 'mcp:read'),
    client('outsider', 'other'),
    client('opaque', 'mcp:read mcp:write'),
    client('stepper', 'mcp:read mcp:sql'),
    client('introspector', 'mcp:read'),
  ],
  scopes: ['mcp:read', 'mcp:write', 'mcp:sql', 'other'],
  features: {
    // The built-in login and consent pages (any name, no password): what
    // the authorization-code test fills in, headless.
    devInteractions: { enabled: true },
    // Dynamic client registration (RFC 7591), as MCP clients use it.
    registration: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: {
      enabled: true,
      // The resource server may ask about any token.
      allowedPolicy: async () => true,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, indicator, client) => {
        if (indicator !== resource) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'mcp:read mcp:write mcp:sql other',
          audience: resource,
          accessTokenTTL: 300,
          // The client named "opaque" gets opaque tokens (checked by
          // introspection); the others, JWTs.
          accessTokenFormat: client.clientId === 'opaque' ? 'opaque' : 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});
server.on('request', provider.callback());
console.log(`listening on ${issuer}`);
