// Composes the supergraph from the two subgraphs' SDL with @apollo/composition (what
// `rover supergraph compose` runs) and writes it, with each subgraph's routing URL.
//
//   node compose.mjs [--contacts-sdl FILE|-] [--contacts-url URL]
//                    [--orders-sdl FILE] [--orders-url URL] [--out FILE]
//
// contact-gateway's SDL is `contact-gateway schema` (the repository's schema.graphql is the
// same text; `-` reads it from stdin), the Orders SDL is orders.graphql. The defaults are the
// README's ports: contact-gateway on 4000, Orders on 4001.
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const here = (path) => new URL(path, import.meta.url).pathname;
const { values: args } = parseArgs({
  options: {
    'contacts-sdl': { type: 'string', default: here('../../schema.graphql') },
    'contacts-url': { type: 'string', default: 'http://127.0.0.1:4000/graphql' },
    'orders-sdl': { type: 'string', default: here('./orders.graphql') },
    'orders-url': { type: 'string', default: 'http://127.0.0.1:4001/graphql' },
    out: { type: 'string', default: here('./supergraph.graphql') },
  },
});

const read = (file) => readFileSync(file === '-' ? 0 : file, 'utf8');
const result = composeServices([
  { name: 'contacts', url: args['contacts-url'], typeDefs: parse(read(args['contacts-sdl'])) },
  { name: 'orders', url: args['orders-url'], typeDefs: parse(read(args['orders-sdl'])) },
]);
if (result.errors) {
  for (const error of result.errors) console.error(`composition error: ${error.message}`);
  process.exit(1);
}
for (const hint of result.hints ?? []) console.error(`hint: ${hint.toString()}`);
writeFileSync(args.out, result.supergraphSdl);
console.log(`supergraph: ${args.out} (contacts ${args['contacts-url']}, orders ${args['orders-url']})`);
