// graphql-http's server audits against a running gateway: every one of the 61 must pass,
// with no error, warning or notice. Usage: node graphql-http-audit.mjs http://127.0.0.1:4000/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node graphql-http-audit.mjs <graphql url>');
  process.exit(2);
}
const results = await auditServer({ url });
let failed = 0;
for (const result of results) {
  if (result.status === 'ok') continue;
  failed++;
  let body = '';
  try {
    body = (await result.response.text()).slice(0, 300);
  } catch {}
  console.log(`${result.status.toUpperCase()} ${result.id} ${result.name}: ${result.reason}`);
  console.log(`    ${result.response.status} ${result.response.headers.get('content-type')} ${body}`);
}
const passed = results.length - failed;
console.log(`graphql-http audits: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && results.length === 61 ? 0 : 1);
