// A frontend of plain ES modules and fetch, no build step: lists contacts with paging,
// searches, and edits a contact's notes through the gateway from its own origin (CORS), with
// Automatic Persisted Queries (Apollo's protocol: the hash first, the query when the gateway
// does not know it yet) and an API key when the gateway has [auth].

const $ = (id) => document.getElementById(id);

const LIST = `query Contacts($first: Int!, $after: String, $filter: ContactFilter) {
  contacts(first: $first, after: $after, filter: $filter) {
    nodes { id provider displayName primaryEmail primaryPhone company notes }
    pageInfo { hasNextPage endCursor }
  }
}`;

const UPDATE = `mutation UpdateNotes($id: ID!, $notes: String) {
  updateContact(id: $id, input: { notes: $notes }) {
    contact { id notes }
    userErrors { field message code }
  }
}`;

const hashes = new Map();
async function sha256(text) {
  if (!hashes.has(text)) {
    const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
    hashes.set(text, [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join(''));
  }
  return hashes.get(text);
}

/** One GraphQL operation, sent as a persisted query (hash only, then the query if unknown). */
export async function graphql(query, variables) {
  const extensions = { persistedQuery: { version: 1, sha256Hash: await sha256(query) } };
  let body = await post({ variables, extensions });
  if (body.errors?.some((e) => e.extensions?.code === 'PERSISTED_QUERY_NOT_FOUND')) {
    body = await post({ query, variables, extensions });
  }
  if (body.errors?.length && !body.data) {
    throw new Error(body.errors.map((e) => `${e.extensions?.code}: ${e.message}`).join('; '));
  }
  return body;
}

async function post(payload) {
  const headers = { 'Content-Type': 'application/json' };
  const key = $('apikey').value.trim();
  if (key) headers.Authorization = `Bearer ${key}`;
  const response = await fetch($('endpoint').value, { method: 'POST', headers, body: JSON.stringify(payload) });
  return response.json();
}

let cursor = null;
let filter = null;

async function load(append) {
  $('status').textContent = 'Loading…';
  try {
    const body = await graphql(LIST, { first: 10, after: append ? cursor : null, filter });
    const { nodes, pageInfo } = body.data.contacts;
    const rows = $('contacts').tBodies[0];
    if (!append) rows.replaceChildren();
    for (const contact of nodes) rows.append(row(contact));
    cursor = pageInfo.endCursor;
    $('more').hidden = !pageInfo.hasNextPage;
    const problems = (body.errors || []).map((e) => `${e.extensions?.provider ?? ''} ${e.extensions?.code}`);
    $('status').textContent = `${rows.rows.length} contacts` + (problems.length ? ` (not answering: ${problems.join(', ')})` : '');
  } catch (error) {
    $('status').textContent = error.message;
  }
}

function row(contact) {
  const tr = document.createElement('tr');
  tr.dataset.id = contact.id;
  for (const value of [contact.displayName, contact.provider, contact.primaryEmail, contact.primaryPhone, contact.company]) {
    const td = document.createElement('td');
    td.textContent = value ?? '';
    tr.append(td);
  }
  const edit = document.createElement('button');
  edit.textContent = 'Edit';
  edit.className = 'edit';
  edit.addEventListener('click', () => openEditor(contact, tr));
  const td = document.createElement('td');
  td.append(edit);
  tr.append(td);
  return tr;
}

function openEditor(contact, tr) {
  $('edit-id').textContent = contact.displayName;
  $('edit-notes').value = contact.notes ?? '';
  $('edit-errors').textContent = '';
  const dialog = $('editor');
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'save') return;
    const body = await graphql(UPDATE, { id: contact.id, notes: $('edit-notes').value || null });
    const payload = body.data?.updateContact;
    const problems = [...(payload?.userErrors ?? []), ...(body.errors ?? [])];
    if (problems.length) {
      $('status').textContent = `Not saved: ${problems.map((e) => e.message).join('; ')}`;
      return;
    }
    contact.notes = payload.contact.notes;
    $('status').textContent = `Saved ${contact.displayName}`;
    tr.dataset.saved = 'true';
  };
  dialog.showModal();
}

$('search').addEventListener('submit', (event) => {
  event.preventDefault();
  const term = $('term').value.trim();
  filter = term ? { search: term } : null;
  cursor = null;
  load(false);
});
$('more').addEventListener('click', () => load(true));
$('endpoint').value = new URLSearchParams(location.search).get('gateway') ?? $('endpoint').value;
load(false);
