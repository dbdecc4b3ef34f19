/**
 * The organisation's members (admins only): who they are, their role and whether their invitation is pending; add a
 * member with an invitation link (shown once, to pass on) or an initial password; make admin / member; remove —
 * which signs the member out at once (docs/security.md "Members").
 */
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import type { TFunction } from 'i18next';
import { useTranslation } from 'react-i18next';
import { api, ApiError, ok, type paths } from '../../api/client.ts';
import { AdminOnly } from '../../components/admin-only.tsx';
import { Confirm } from '../../components/confirm.tsx';
import { ErrorMessage } from '../../components/error-message.tsx';
import { Loading } from '../../components/loading.tsx';
import { Page } from '../../components/page.tsx';
import { useFormat } from '../../lib/format.ts';
import { useSession } from '../../session/session.tsx';

const MEMBERS_KEY = ['members'] as const;
type Member = paths['/api/members']['get']['responses'][200]['content']['application/json']['members'][number];
type Invitation = { token: string; expiresAt: string };

/** The link the invited member opens: the token in the fragment, which the browser never sends to a server. */
const invitationUrl = (token: string) => `${window.location.origin}/invitation#${token}`;

/**
 * A mailto: link that opens the admin's own mail program with the invitation written out: the platform sends no
 * e-mail itself (it needs no mail server and works offline), and the link is never stored anywhere but that message.
 */
function invitationMail(email: string, url: string, expiresAt: string, t: TFunction, f: ReturnType<typeof useFormat>): string {
  const subject = t('members.mailSubject');
  const body = t('members.mailBody', { url, date: f.dateTime(expiresAt) });
  return `mailto:${encodeURIComponent(email)}?subject=${encodeURIComponent(subject)}&body=${encodeURIComponent(body)}`;
}

function InvitationNotice({ name, email, invitation }: { name: string; email: string; invitation: Invitation }) {
  const { t } = useTranslation();
  const f = useFormat();
  const [copied, setCopied] = useState(false);
  const url = invitationUrl(invitation.token);
  return (
    <section className="card" aria-label={t('members.invitationTitle', { name })}>
      <h2>{t('members.invitationTitle', { name })}</h2>
      <p>{t('members.invitationHelp', { email, date: f.dateTime(invitation.expiresAt) })}</p>
      <label className="form">
        <span>{t('members.invitationLink')}</span>
        <input className="invitation-link" readOnly value={url} onFocus={(e) => e.target.select()} />
      </label>
      <div className="actions">
        <button type="button" onClick={() => void navigator.clipboard?.writeText(url).then(() => setCopied(true), () => {})}>{t('common.copy')}</button>
        <a className="button" href={invitationMail(email, url, invitation.expiresAt, t, f)}>{t('members.sendByEmail')}</a>
        <span role="status">{copied ? t('members.copied') : ''}</span>
      </div>
    </section>
  );
}

function AddMemberForm({ onAdded }: { onAdded: (m: Member, invitation?: Invitation) => void }) {
  const { t } = useTranslation();
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [role, setRole] = useState<'member' | 'admin'>('member');
  const [access, setAccess] = useState<'invitation' | 'password'>('invitation');
  const [password, setPassword] = useState('');
  const add = useMutation({
    mutationFn: () => ok(api.POST('/api/members', { body: { email, name, role, ...(access === 'password' ? { password } : {}) } })),
    onSuccess: (r) => {
      setEmail(''); setName(''); setPassword(''); setRole('member');
      onAdded(r.member, r.invitation);
    },
  });
  const submit = (e: FormEvent) => { e.preventDefault(); add.mutate(); };
  return (
    <form className="form card" onSubmit={submit} aria-label={t('members.add')}>
      <h2>{t('members.add')}</h2>
      <div className="row">
        <label><span>{t('members.name')}</span><input required value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" /></label>
        <label><span>{t('members.email')}</span><input required type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="off" /></label>
        <label>
          <span>{t('members.role')}</span>
          <select value={role} onChange={(e) => setRole(e.target.value === 'admin' ? 'admin' : 'member')}>
            <option value="member">{t('members.roles.member')}</option>
            <option value="admin">{t('members.roles.admin')}</option>
          </select>
        </label>
      </div>
      <fieldset>
        <legend>{t('members.access')}</legend>
        <label className="choice"><input type="radio" name="access" checked={access === 'invitation'} onChange={() => setAccess('invitation')} /> {t('members.byInvitation')}</label>
        <label className="choice"><input type="radio" name="access" checked={access === 'password'} onChange={() => setAccess('password')} /> {t('members.byPassword')}</label>
        {access === 'password' && (
          <label>
            <span>{t('members.initialPassword')}</span>
            <input type="password" required value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" />
            <small>{t('auth.passwordHint')}</small>
          </label>
        )}
      </fieldset>
      {add.isError && (add.error instanceof ApiError && add.error.code === 'EMAIL_TAKEN'
        ? <div className="alert alert-error" role="alert"><p>{t('members.emailTaken')}</p></div>
        : <ErrorMessage error={add.error} />)}
      <div className="actions"><button type="submit" className="primary" disabled={add.isPending}>{t('members.submit')}</button></div>
    </form>
  );
}

function MembersList() {
  const { t } = useTranslation();
  const f = useFormat();
  const client = useQueryClient();
  const me = useSession().data?.user.id;
  const members = useQuery({ queryKey: MEMBERS_KEY, queryFn: () => ok(api.GET('/api/members')) });
  const [notice, setNotice] = useState('');
  const [removing, setRemoving] = useState<string | undefined>();
  const [invited, setInvited] = useState<{ name: string; email: string; invitation: Invitation } | undefined>();
  const refresh = () => client.invalidateQueries({ queryKey: MEMBERS_KEY });
  const setRole = useMutation({
    mutationFn: (v: { m: Member; role: 'admin' | 'member' }) => ok(api.PATCH('/api/members/{id}', { params: { path: { id: v.m.id } }, body: { role: v.role } })),
    onSuccess: (r) => { setNotice(t('members.roleChanged', { name: r.member.name, role: t(`members.roles.${r.member.role}`) })); void refresh(); },
  });
  const remove = useMutation({
    mutationFn: (m: Member) => ok(api.DELETE('/api/members/{id}', { params: { path: { id: m.id } } })),
    onSuccess: (_r, m) => { setRemoving(undefined); setNotice(t('members.removed', { name: m.name })); void refresh(); },
  });
  const reinvite = useMutation({
    mutationFn: (m: Member) => ok(api.POST('/api/members/{id}/invitation', { params: { path: { id: m.id } } })),
    onSuccess: (r, m) => { setInvited({ name: m.name, email: m.email, invitation: r.invitation }); void refresh(); },
  });

  if (members.isPending) return <Loading />;
  if (members.isError) return <ErrorMessage error={members.error} onRetry={() => void members.refetch()} />;
  const statusOf = (m: Member) => {
    if (m.status === 'active') return t('members.statuses.active');
    if (m.invitationExpiresAt && Date.parse(m.invitationExpiresAt) > Date.now()) return t('members.invitedUntil', { date: f.dateTime(m.invitationExpiresAt) });
    return t('members.invitationExpired');
  };
  const failed = setRole.error ?? remove.error ?? reinvite.error;
  return (
    <>
      <p className="notice" role="status">{notice}</p>
      {failed && <ErrorMessage error={failed} />}
      {invited && <InvitationNotice {...invited} />}
      <div className="table-wrap" role="region" aria-label={t('members.title')} tabIndex={0}>
        <table>
          <thead>
            <tr>
              <th scope="col">{t('members.name')}</th>
              <th scope="col">{t('members.email')}</th>
              <th scope="col">{t('members.role')}</th>
              <th scope="col">{t('members.status')}</th>
              <th scope="col"><span className="visually-hidden">{t('common.actions')}</span></th>
            </tr>
          </thead>
          <tbody>
            {members.data.members.map((m) => (
              <tr key={m.id}>
                <td>{m.name} {m.id === me && <small>{t('members.you')}</small>}</td>
                <td>{m.email}</td>
                <td>{t(`members.roles.${m.role}`)}</td>
                <td>{statusOf(m)}</td>
                <td>
                  {removing === m.id ? (
                    <Confirm question={t('members.confirmRemove', { name: m.name })} confirmLabel={t('members.confirmYes')}
                      busy={remove.isPending} onConfirm={() => remove.mutate(m)} onCancel={() => setRemoving(undefined)} />
                  ) : (
                    <div className="actions">
                      {m.role === 'member'
                        ? <button type="button" disabled={setRole.isPending} onClick={() => setRole.mutate({ m, role: 'admin' })}>{t('members.makeAdmin', { name: m.name })}</button>
                        : <button type="button" disabled={setRole.isPending} onClick={() => setRole.mutate({ m, role: 'member' })}>{t('members.makeMember', { name: m.name })}</button>}
                      {m.status === 'invited' && <button type="button" disabled={reinvite.isPending} onClick={() => reinvite.mutate(m)}>{t('members.newLink')}</button>}
                      <button type="button" className="danger" onClick={() => setRemoving(m.id)}>{t('members.remove', { name: m.name })}</button>
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <AddMemberForm onAdded={(m, invitation) => {
        setNotice(t('members.added', { name: m.name }));
        setInvited(invitation ? { name: m.name, email: m.email, invitation } : undefined);
        void refresh();
      }} />
    </>
  );
}

export default function MembersPage() {
  const { t } = useTranslation();
  return (
    <AdminOnly title={t('members.title')}>
      <Page title={t('members.title')}>
        <p className="intro">{t('members.intro')}</p>
        <MembersList />
      </Page>
    </AdminOnly>
  );
}
