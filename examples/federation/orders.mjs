// The Orders subgraph: ten orders over four contacts of contact-gateway's sandbox seed
// (src/sandbox/seed.rs), two at MagicBlocks, one at Consuelo, one at MaiAgent. GraphQL over
// HTTP (POST, JSON) on node:http, the schema built by @apollo/subgraph from orders.graphql.
//
//   node orders.mjs [--port 4001]        (port 0 picks a free one; the URL is printed)
import { buildSubgraphSchema } from '@apollo/subgraph';
import { graphql, parse } from 'graphql';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const OLIVIA = 'magicblocks:con_01HSBX7K2M0000001'; // Olivia Bennett
const MARCUS = 'magicblocks:con_01HSBX7K2M0000003'; // Marcus A Reid
const JAMES = 'consuelo:contact_1002'; // James Whitfield
const MEILING = 'maiagent:3b1f8e2a-6c4d-4e7a-9f10-000000000001'; // 陳美玲 Chen Mei-Ling

const ORDERS = [
  ['ord-1001', OLIVIA, 129.0, 'USD', '2025-01-06T09:12:00Z'],
  ['ord-1002', MEILING, 2450.0, 'TWD', '2025-01-07T03:40:00Z'],
  ['ord-1003', JAMES, 89.5, 'GBP', '2025-01-07T14:05:00Z'],
  ['ord-1004', OLIVIA, 42.75, 'USD', '2025-01-09T16:30:00Z'],
  ['ord-1005', MARCUS, 310.0, 'GBP', '2025-01-10T11:00:00Z'],
  ['ord-1006', MEILING, 980.0, 'TWD', '2025-01-12T02:15:00Z'],
  ['ord-1007', JAMES, 15.0, 'GBP', '2025-01-13T08:45:00Z'],
  ['ord-1008', OLIVIA, 560.2, 'USD', '2025-01-15T19:20:00Z'],
  ['ord-1009', MARCUS, 74.0, 'GBP', '2025-01-16T10:10:00Z'],
  ['ord-1010', MEILING, 1200.0, 'TWD', '2025-01-18T05:55:00Z'],
].map(([id, contactId, total, currency, placedAt]) => ({ id, contactId, total, currency, placedAt }));

const byId = new Map(ORDERS.map((order) => [order.id, order]));

const resolvers = {
  Query: {
    orders: () => ORDERS,
    order: (_, { id }) => byId.get(id) ?? null,
  },
  Order: {
    __resolveReference: ({ id }) => byId.get(id) ?? null,
    // Only the key: the router fetches the rest from contact-gateway.
    contact: (order) => ({ __typename: 'Contact', id: order.contactId }),
  },
};

const typeDefs = parse(readFileSync(new URL('./orders.graphql', import.meta.url), 'utf8'));
const schema = buildSubgraphSchema({ typeDefs, resolvers });

function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  if (new URL(req.url, 'http://x').pathname !== '/graphql') {
    return send(res, 404, { errors: [{ message: 'not found: POST /graphql' }] });
  }
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST');
    return send(res, 405, { errors: [{ message: 'use POST with a JSON body' }] });
  }
  let request;
  try {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    request = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return send(res, 400, { errors: [{ message: 'the body is not JSON' }] });
  }
  const { query, variables, operationName } = request ?? {};
  if (typeof query !== 'string') {
    return send(res, 400, { errors: [{ message: 'the body has no "query" string' }] });
  }
  const result = await graphql({ schema, source: query, variableValues: variables, operationName });
  send(res, 200, result);
});

const { values } = parseArgs({ options: { port: { type: 'string', default: process.env.PORT ?? '4001' } } });
server.listen(Number(values.port), '127.0.0.1', () => {
  console.log(`Orders: http://127.0.0.1:${server.address().port}/graphql`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
