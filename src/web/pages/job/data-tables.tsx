/**
 * The parsed data of a job: each list of records (an extract step's rows) as a table with a CSV export; anything
 * else as JSON. Values stay the portal's text, except numbers and ISO dates, which are shown in the user's locale.
 */
import { useTranslation } from 'react-i18next';
import { useFormat, type Formatters } from '../../lib/format.ts';

type Row = Record<string, unknown>;

const isRows = (v: unknown): v is Row[] => Array.isArray(v) && v.length > 0 && v.every((r) => r !== null && typeof r === 'object' && !Array.isArray(r));

function columnsOf(rows: Row[]): string[] {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  return cols;
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** Shown in the locale: plain decimal numbers and ISO dates (the CSV keeps the portal's text). */
function display(v: unknown, f: Formatters): string {
  const s = cellText(v);
  if (/^-?\d+(\.\d+)?$/.test(s)) return new Intl.NumberFormat(f.locale, { minimumFractionDigits: s.includes('.') ? s.split('.')[1]!.length : 0 }).format(Number(s));
  if (/^\d{4}-\d\d-\d\d$/.test(s)) return f.date(`${s}T12:00:00`);
  return s;
}

/**
 * RFC 4180 CSV. A cell that a spreadsheet would run as a formula (=, +, @, tab, or - not starting a number) is
 * prefixed with ' — the data comes from a portal, not from the user.
 */
export function toCsv(rows: Row[]): string {
  const cols = columnsOf(rows);
  const cell = (v: unknown) => {
    let s = cellText(v);
    if (/^[=+@\t\r]/.test(s) || (/^-/.test(s) && !/^-\d/.test(s))) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [cols.map(cell).join(','), ...rows.map((r) => cols.map((c) => cell(r[c])).join(','))].join('\r\n') + '\r\n';
}

function downloadCsv(name: string, rows: Row[]) {
  const url = URL.createObjectURL(new Blob([toCsv(rows)], { type: 'text/csv;charset=utf-8' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${name}.csv`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function DataTables({ result }: { result: unknown }) {
  const { t } = useTranslation();
  const f = useFormat();
  const entries = result && typeof result === 'object' && !Array.isArray(result) ? Object.entries(result as Row) : [];
  return (
    <section>
      <h2 id="data-heading">{t('job.data')}</h2>
      {entries.length === 0 ? <p>{t('job.noData')}</p> : entries.map(([name, value]) => {
        const headingId = `data-${name}`;
        if (!isRows(value)) {
          return (
            <div key={name}>
              <h3 id={headingId}>{name}</h3>
              <pre className="code" tabIndex={0} aria-labelledby={headingId}><code>{JSON.stringify(value, null, 2)}</code></pre>
            </div>
          );
        }
        const cols = columnsOf(value);
        return (
          <div key={name}>
            <div className="page-head">
              <h3 id={headingId}>{name} <small>({t('job.rows', { count: value.length })})</small></h3>
              <button type="button" onClick={() => downloadCsv(name, value)}>{t('job.exportCsv', { name })}</button>
            </div>
            <div className="table-wrap" role="region" aria-labelledby={headingId} tabIndex={0}>
              <table>
                <thead><tr>{cols.map((c) => <th scope="col" key={c}>{c}</th>)}</tr></thead>
                <tbody>
                  {value.map((r, i) => <tr key={i}>{cols.map((c) => <td key={c}>{display(r[c], f)}</td>)}</tr>)}
                </tbody>
              </table>
            </div>
          </div>
        );
      })}
    </section>
  );
}
