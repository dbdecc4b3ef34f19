/**
 * The redactor on its own: every form a secret can take in text, multi-line secrets, and secrets split across log
 * lines (live log one line at a time, execution.log all at once).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ExecutionLog, MAX_LINE_CHARS, type ExecLine } from '../../src/execution-plane/job/execution-log.ts';
import { LineRedactor, Redactor, REDACTED, redactSequence, SecretValues, secretForms } from '../../src/execution-plane/job/redactor.ts';

const SECRET = 'Pa$$ w0rd/ñ"\\<x>&\'é+';

/** Asserts that `text` holds the secret in no form and that the redactor left its mark. */
function clean(text: string, secret = SECRET): void {
  for (const form of secretForms(secret)) assert.ok(!text.includes(form), `form ${JSON.stringify(form)} left in ${JSON.stringify(text)}`);
}

describe('Redactor: the forms of a secret', () => {
  const r = new Redactor([SECRET]);
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
  const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

  const cases: Record<string, string> = {
    'as it is': `login with ${SECRET} now`,
    'JSON-escaped': JSON.stringify({ password: SECRET }),
    'JSON-escaped, ASCII only': JSON.stringify({ p: SECRET }).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`),
    'JSON-escaped with \\/': JSON.stringify({ p: SECRET }).replace(/\//g, '\\/'),
    'JSON-escaped twice (JSON in a JSON string)': JSON.stringify({ body: JSON.stringify({ p: SECRET }) }),
    'URL-encoded (encodeURIComponent)': `https://portal.example/?p=${encodeURIComponent(SECRET)}&x=1`,
    'URL-encoded with lower-case hex': `p=${encodeURIComponent(SECRET).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())}`,
    'form-encoded (spaces as +)': new URLSearchParams({ user: 'ana', password: SECRET }).toString(),
    'encodeURI': `https://portal.example/${encodeURI(SECRET)}`,
    'HTML-escaped': `<input value="${SECRET.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')}">`,
    'hex of its bytes': `bytes ${Buffer.from(SECRET).toString('hex')} end`,
    'base64, aligned': `Authorization: Basic ${b64(SECRET)}`,
    'base64 shifted by one byte': `token ${b64(`x${SECRET}`)}`,
    'base64 shifted by two bytes': `token ${b64(`xy${SECRET}`)}`,
    'base64("user:" + password)': `Authorization: Basic ${b64(`user:${SECRET}`)}`,
    'base64 with text after it': `${b64(`ab${SECRET}tail and more`)}`,
    'base64url, each alignment': [b64url(SECRET), b64url(`a${SECRET}`), b64url(`ab${SECRET}`)].join(' '),
  };
  for (const [form, text] of Object.entries(cases)) {
    it(`redacts the secret ${form}`, () => {
      const out = r.redact(text);
      assert.ok(out.includes(REDACTED), `nothing redacted in ${out}`);
      clean(out);
    });
  }

  it('finds base64 forms for every length and alignment of random secrets', () => {
    for (let n = 4; n < 40; n++) {
      const secret = randomBytes(n).toString('latin1').replace(/[\r\n]/g, 'x');
      const red = new Redactor([secret]);
      for (let pre = 0; pre < 6; pre++) {
        const text = Buffer.from(`${'p'.repeat(pre)}${secret}${'s'.repeat(n % 5)}`, 'utf8').toString('base64');
        const out = red.redact(text);
        assert.ok(out.includes(REDACTED), `length ${n}, prefix ${pre}: ${text}`);
      }
    }
  });

  it('redacts each line of a multi-line secret, also when a line is logged alone', () => {
    const pem = '-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcN\nLYLI4fhzSWK2gWZi9e8pG1mAS\r\n-----END KEY-----';
    const red = new Redactor([pem]);
    assert.equal(red.redact(`key: ${pem}`), `key: ${REDACTED}`);
    assert.equal(red.redact('line two is LYLI4fhzSWK2gWZi9e8pG1mAS here'), `line two is ${REDACTED} here`);
    assert.equal(red.redact(JSON.stringify({ k: pem })), `{"k":"${REDACTED}"}`);
  });

  it('leaves values shorter than 4 characters alone, so short cookies do not garble the log', () => {
    const red = new Redactor(['en', 'abc', SECRET]);
    assert.equal(red.redact('when then abc'), 'when then abc');
  });

  it('replaces overlapping secrets with one marker', () => {
    const red = new Redactor(['abcdef', 'defghi']);
    assert.equal(red.redact('x abcdefghi y'), `x ${REDACTED} y`);
  });
});

describe('Redactor: a secret split across log lines', () => {
  const secret = 'correct-horse-battery-staple';
  const pieces = (n: number) => {
    const out: string[] = [];
    for (let i = 0; i < secret.length; i += n) out.push(secret.slice(i, i + n));
    return out;
  };

  it('live log: the second half of a value split over two lines is redacted, and so is a first half of 4 characters or more', () => {
    const lr = new LineRedactor(new Redactor([secret]));
    const first = lr.line('script', `part one ${secret.slice(0, 10)}`);
    const second = lr.line('script', `${secret.slice(10)} and more`);
    assert.equal(first, `part one ${REDACTED}`);
    assert.equal(second, `${REDACTED} and more`);
  });

  it('live log: one character per line leaks at most the first three characters', () => {
    const lr = new LineRedactor(new Redactor([secret]));
    const out = pieces(1).map((p) => lr.line('script', p));
    assert.deepEqual(out.slice(0, 3), ['c', 'o', 'r']);
    assert.ok(out.slice(3).every((l) => l === REDACTED), JSON.stringify(out));
  });

  it('execution.log: no piece of a value split over many lines remains, whatever the piece size', () => {
    for (const size of [1, 2, 3, 5, 9]) {
      const lines = pieces(size).map((text) => ({ stream: 'script', text }));
      const out = redactSequence(new Redactor([secret]), lines);
      assert.ok(out.every((l) => l === REDACTED), `size ${size}: ${JSON.stringify(out)}`);
    }
  });

  it('execution.log: pieces of one stream interleaved with another stream\'s lines are found', () => {
    const [a, b] = [secret.slice(0, 14), secret.slice(14)];
    const out = redactSequence(new Redactor([secret]), [
      { stream: 'script', text: `x ${a}` }, { stream: 'worker', text: 'screenshot screenshot-0.png (100 bytes)' }, { stream: 'script', text: `${b} y` },
    ]);
    assert.deepEqual(out, [`x ${REDACTED}`, 'screenshot screenshot-0.png (100 bytes)', `${REDACTED} y`]);
  });

  it('ExecutionLog: the streamed lines and execution.log hold no piece of a split base64 form', () => {
    const streamed: ExecLine[] = [];
    const exec = new ExecutionLog(new Redactor([secret]), (l) => streamed.push(l));
    const encoded = Buffer.from(`user:${secret}`).toString('base64');
    exec.add('script', `auth ${encoded.slice(0, 12)}`);
    exec.info('an unrelated worker line');
    exec.add('script', encoded.slice(12, 30));
    exec.add('script', `${encoded.slice(30)} done`);
    const text = exec.text();
    const messages = text.split('\n').filter(Boolean).map((l) => l.replace(/^\S+ \S+\s+/, ''));
    const scriptText = messages.filter((_, i) => i !== 1).join('');
    for (const form of secretForms(secret)) assert.ok(!scriptText.includes(form), `execution.log keeps ${form}: ${text}`);
    assert.equal(streamed.length, 4);
    assert.match(streamed[3]!.message, /\[redacted\] done$/);
  });

  it('ExecutionLog: a line over MAX_LINE_CHARS is cut after redaction, so a value across the cut leaves no prefix', () => {
    const streamed: ExecLine[] = [];
    const exec = new ExecutionLog(new Redactor([secret]), (l) => streamed.push(l));
    const line = `${'a'.repeat(MAX_LINE_CHARS - 5)}${secret}${'b'.repeat(5000)}`;
    exec.add('script', line);
    const text = exec.text();
    assert.match(text, /more characters not kept\]/);
    assert.ok(!text.includes(secret.slice(0, 4)), 'no prefix of the value at the cut');
    assert.ok(!streamed[0]!.message.includes(secret.slice(0, 4)));
    assert.ok(streamed[0]!.message.length < MAX_LINE_CHARS + 100);
  });
});

describe('SecretValues (parsed data, value by value)', () => {
  const secret = `pw-${randomBytes(8).toString('hex')}/+é`;
  const v = new SecretValues([secret, 'true', 'line-one-abcd\nline-two-efgh']);

  it('replaces a value or key that is a secret, in any encoding, and leaves values that only contain one', () => {
    const data = {
      a: secret, b: ` ${secret} `, c: encodeURIComponent(secret), d: Buffer.from(secret).toString('base64'), e: Buffer.from(secret).toString('hex'),
      f: `Hola ${secret}`, g: [secret, { [secret]: 1 }], h: true, i: 'true', multi: 'line-one-abcd\r\nline-two-efgh', line: 'line-two-efgh',
    };
    assert.deepEqual(JSON.parse(v.stringify(data)), {
      a: REDACTED, b: REDACTED, c: REDACTED, d: REDACTED, e: REDACTED, f: `Hola ${secret}`, g: [REDACTED, { [REDACTED]: 1 }],
      // A secret "true" replaces the string "true", never the boolean: the JSON stays valid.
      h: true, i: REDACTED, multi: REDACTED, line: REDACTED,
    });
  });

  it('ignores values shorter than 4 characters, keeps "__proto__" keys as data and handles data as deep as JSON allows', () => {
    let deep: unknown = secret;
    for (let i = 0; i < 2000; i++) deep = [deep];
    const text = v.stringify({ deep, ['__proto__']: { x: secret } });
    assert.ok(!text.includes(secret));
    assert.equal(JSON.parse(text)['__proto__'].x, REDACTED);
    assert.equal(new SecretValues(['abc']).stringify({ k: 'abc' }), '{"k":"abc"}');
  });
});
