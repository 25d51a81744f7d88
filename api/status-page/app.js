// The status page (api/status-page.ts serves it): Preact + htm, uPlot charts; no build step.
// Reads /status.json every second; the selected view's rows come over GraphQL — a page, then its
// change subscription over SSE from that page's version, so no change is missed or applied twice.
import { h, render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import uPlot from 'uplot';

const html = htm.bind(h);
const params = new URLSearchParams(location.search);
const token = params.get('token');
const auth = token ? { authorization: `Bearer ${token}` } : {};

const bytes = (n) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const ago = (ms) => {
  if (!ms) return '—';
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 60 ? `${s.toFixed(0)} s ago` : s < 3600 ? `${(s / 60).toFixed(0)} min ago` : `${(s / 3600).toFixed(1)} h ago`;
};
const keyOf = (view, row) => JSON.stringify(view.key.map((k) => row[k] ?? null));

function useStatus() {
  const [status, setStatus] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    let stopped = false;
    const poll = async () => {
      try {
        const response = await fetch('/status.json', { cache: 'no-store' });
        const body = await response.json();
        if (!response.ok) throw new Error(body.error ?? response.statusText);
        setStatus(body);
        setError(null);
      } catch (e) {
        setError(String(e.message ?? e));
      }
      if (!stopped) setTimeout(poll, 1000);
    };
    poll();
    return () => (stopped = true);
  }, []);
  return [status, error];
}

function Chart({ title, t, values, unit }) {
  const ref = useRef(null);
  const plot = useRef(null);
  useEffect(() => {
    const data = [t, values.map((v) => (v === null ? null : v))];
    if (!plot.current) {
      plot.current = new uPlot(
        { title, width: 460, height: 180, series: [{}, { label: unit, stroke: '#0b57d0', width: 1.5, spanGaps: true }], axes: [{}, { size: 60 }] },
        data,
        ref.current,
      );
    } else {
      plot.current.setData(data);
    }
  }, [t, values]);
  return html`<div ref=${ref} data-chart=${title}></div>`;
}

async function graphql(query, variables) {
  const response = await fetch('/graphql', { method: 'POST', headers: { 'content-type': 'application/json', ...auth }, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors) throw new Error(body.errors[0].message);
  return body.data;
}

/** A GraphQL subscription over SSE (fetch, so a token can travel in a header); calls onNext per event. */
async function subscribe(query, variables, onNext, signal) {
  const url = `/graphql?query=${encodeURIComponent(query)}&variables=${encodeURIComponent(JSON.stringify(variables))}`;
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...auth }, signal });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const message = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = message.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).join('\n');
      const event = message.split('\n').find((l) => l.startsWith('event:'))?.slice(6).trim();
      if (event === 'next' && data) onNext(JSON.parse(data));
    }
  }
}

function LiveRows({ view }) {
  const [rows, setRows] = useState(new Map());
  const [flash, setFlash] = useState(null);
  const [note, setNote] = useState('');
  useEffect(() => {
    const abort = new AbortController();
    const fields = view.fields.join(' ');
    (async () => {
      try {
        const page = (await graphql(`{ ${view.name}List(first: 50) { nodes { ${fields} } version } }`))[`${view.name}List`];
        const current = new Map(page.nodes.map((r) => [keyOf(view, r), r]));
        setRows(new Map(current));
        setNote(`the first ${page.nodes.length} rows at version ${page.version}, then every change`);
        const query = `subscription Live($since: String) { ${view.name}Changes(since: $since) { op version key { ${view.key.join(' ')} } row { ${fields} } } }`;
        await subscribe(
          query,
          { since: page.version },
          ({ data }) => {
            const change = data?.[`${view.name}Changes`];
            if (!change || !change.key) return;
            const key = keyOf(view, change.key);
            if (change.op === 'DELETE') current.delete(key);
            else if (change.row) current.set(key, change.row);
            else return;
            setRows(new Map(current));
            setFlash(key);
          },
          abort.signal,
        );
      } catch (e) {
        if (!abort.signal.aborted) setNote(`live rows unavailable: ${e.message ?? e}`);
      }
    })();
    return () => abort.abort();
  }, [view.name]);
  return html`
    <h2>${view.name}: live rows</h2>
    <p>${note}</p>
    <table data-live=${view.name}>
      <thead><tr>${view.fields.map((f) => html`<th>${f}</th>`)}</tr></thead>
      <tbody>
        ${[...rows].slice(0, 50).map(
          ([key, row]) => html`<tr data-key=${key} class=${flash === key ? 'flash' : ''}>${view.fields.map((f) => html`<td>${row[f] === null ? '∅' : String(row[f])}</td>`)}</tr>`,
        )}
      </tbody>
    </table>`;
}

function App() {
  const [status, error] = useStatus();
  const [selected, setSelected] = useState(params.get('view'));
  if (!status) return html`<p>${error ? `The status cannot be read: ${error}` : 'Loading…'}</p>`;
  const view = status.views.find((v) => v.name === selected) ?? status.views[0];
  const lagNow = status.history?.lag.at(-1);
  return html`
    <h1>cdc-views · ${status.deployment}</h1>
    ${error && html`<p class="stopped">Last refresh failed: ${error}</p>`}
    <p>
      served by a <b>${status.servedBy}</b> process · writer ${status.writer ?? '(none)'} · step ${status.step ?? '—'}
      · position ${(status.checkpoint ?? []).map((p) => `${p.stream}=${p.token}`).join(' ') || '(snapshot pending)'}
      ${lagNow !== undefined && lagNow !== null ? html` · lag <b data-lag>${lagNow.toFixed(1)} s</b>` : ''}
      ${status.rebuild ? html` · <span class="building">rebuild requested: ${status.rebuild}</span>` : ''}
    </p>
    <h2>Views</h2>
    <table data-views>
      <thead><tr><th>view</th><th>state</th><th>rows</th><th>bytes</th><th>last change</th><th>version</th></tr></thead>
      <tbody>
        ${status.views.map(
          (v) => html`<tr data-view=${v.name}>
            <td><button class="view" onClick=${() => setSelected(v.name)}>${v.name}</button></td>
            <td class=${v.state} title=${v.reason ?? ''}>${v.state}${v.progress.map((line) => html`<div class="progress" data-progress>${line}</div>`)}</td>
            <td class="n" data-rows>${v.rows}</td><td class="n">${bytes(v.bytes)}</td>
            <td>${ago(v.lastChangeAt)}</td><td><code>${v.version}</code></td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${status.history
      ? html`<h2>Ingest, the last minutes</h2>
          <div class="charts">
            <${Chart} title="source changes applied / s" unit="changes/s" t=${status.history.t} values=${status.history.applied} />
            <${Chart} title="lag (s): commit → applied" unit="s" t=${status.history.t} values=${status.history.lag} />
          </div>`
      : html`<p>(Charts come from the process writing the views; this one only serves them.)</p>`}
    ${status.reactions.length > 0 &&
    html`<h2>Reactions</h2>
      <table data-reactions>
        <thead><tr><th>reaction</th><th>on</th><th>when</th><th>pending</th><th>undelivered</th><th>handled</th><th>retried</th><th>dead letters</th><th>workers</th><th>last error</th></tr></thead>
        <tbody>
          ${status.reactions.map(
            (r) => html`<tr data-reaction=${r.reaction} class=${r.behind ? 'stopped' : ''} title=${r.behind ? `more than ${r.warnBacklog} changes wait` : ''}>
              <td>${r.reaction}</td><td>${r.view}</td><td><code>${r.when}</code></td>
              <td class="n">${r.joined ? r.pending : '—'}</td><td class="n" data-undelivered>${r.joined ? (r.undelivered ?? '?') : 'not joined'}</td>
              <td class="n" data-handled>${r.counts.handled ?? 0}</td><td class="n">${r.counts.retried ?? 0}</td><td class="n">${r.deadLetters}</td>
              <td class="n">${r.consumers}</td><td>${r.lastError ? `${ago(r.lastError.at)}: ${r.lastError.error}` : ''}</td>
            </tr>`,
          )}
        </tbody>
      </table>`}
    <h2>Dead letters: ${status.deadLetters.count}</h2>
    <ul data-dead-letters>
      ${status.deadLetters.recent.map((d) => html`<li>${new Date(d.at).toISOString()} — ${d.reason} <code>${d.change}</code></li>`)}
    </ul>
    ${view && html`<${LiveRows} key=${view.name} view=${view} />`}
  `;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
