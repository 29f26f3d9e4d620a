// Serves the composed supergraph with Apollo's gateway (@apollo/gateway) in Apollo Server.
//
//   node apollo-gateway.mjs [--supergraph supergraph.graphql] [--port 4002]
//
// Port 0 picks a free one; the URL is printed.
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    supergraph: { type: 'string', default: new URL('./supergraph.graphql', import.meta.url).pathname },
    port: { type: 'string', default: process.env.PORT ?? '4002' },
  },
});

const gateway = new ApolloGateway({ supergraphSdl: readFileSync(args.supergraph, 'utf8') });
// Subgraph errors pass through with their extensions (code, provider); stack traces stay here.
const server = new ApolloServer({ gateway, includeStacktraceInErrorResponses: false });
const { url } = await startStandaloneServer(server, {
  listen: { host: '127.0.0.1', port: Number(args.port) },
});
console.log(`Apollo gateway: ${url}`);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.stop().then(() => process.exit(0)));
}
