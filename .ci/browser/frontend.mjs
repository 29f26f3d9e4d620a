// Opens examples/web (served here from another loopback origin) in headless Chromium against
// the sandbox gateway: lists contacts, pages until a Consuelo contact shows, edits its notes,
// and checks the edit landed in the Consuelo simulator. Fails on any non-loopback request.
// Usage: node frontend.mjs <gateway graphql url> <consuelo simulator url>
import { chromium } from 'playwright-core';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const [gateway, consuelo] = process.argv.slice(2);
const web = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'web');
const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css' };
const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname.replace(/^\/$/, '/index.html');
  try {
    const body = await readFile(join(web, path.replace(/\.\./g, '')));
    res.writeHead(200, { 'content-type': types[path.slice(path.lastIndexOf('.'))] || 'text/plain' });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
const origin = `http://127.0.0.1:${server.address().port}`;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
const outside = [];
try {
  const page = await browser.newPage();
  page.on('request', (request) => {
    const host = new URL(request.url()).hostname;
    if (!['127.0.0.1', 'localhost'].includes(host)) outside.push(request.url());
  });
  await page.goto(`${origin}/index.html?gateway=${encodeURIComponent(gateway)}`);
  await page.waitForSelector('#contacts tbody tr', { timeout: 20000 });
  let pages = 1;
  // Page at least once, then on until a Consuelo contact shows.
  while (pages === 1 || !(await page.$('tr:has(td:text-is("CONSUELO"))'))) {
    if (await page.isHidden('#more')) throw new Error('paged to the end without a Consuelo contact');
    const rows = await page.$$eval('#contacts tbody tr', (r) => r.length);
    await page.click('#more');
    await page.waitForFunction((n) => document.querySelectorAll('#contacts tbody tr').length > n, rows);
    pages += 1;
  }
  const row = await page.$('tr:has(td:text-is("CONSUELO"))');
  const id = await row.getAttribute('data-id');
  const notes = `edited in a browser at ${Date.now()}`;
  await (await row.$('button.edit')).click();
  await page.fill('#edit-notes', notes);
  await page.click('#save');
  await page.waitForSelector(`tr[data-id="${id}"][data-saved="true"]`, { timeout: 20000 });
  const records = await (await fetch(`${consuelo}/__sandbox/records`)).json();
  const stored = records.find((r) => `consuelo:${r.id}` === id);
  if (stored?.notes !== notes) throw new Error(`the simulator holds ${JSON.stringify(stored?.notes)} for ${id}`);
  if (outside.length) throw new Error(`the page asked other hosts: ${outside.join(', ')}`);
  console.log(`frontend: listed ${pages} pages from ${origin}, edited ${id}, and the simulator has it`);
} finally {
  await browser.close();
  server.close();
}
