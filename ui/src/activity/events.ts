// What the timeline says of an event: its kind in words, and the sentence a person reads.
import type { ActivityEvent, EventKind } from '../lib/ipc';

/** Every kind, in the order the filter lists them, with its name. */
export const KINDS: [EventKind, string][] = [
  ['created', 'Created'],
  ['rotated', 'Rotated'],
  ['deactivated', 'Deactivated'],
  ['activated', 'Reactivated'],
  ['leaked', 'Leaked'],
  ['reported', 'Reported'],
  ['reuse_detected', 'Reuse detected'],
  ['new_address', 'New address'],
  ['expired', 'Expired'],
  ['relabelled', 'Relabelled'],
  ['deleted', 'Deleted'],
  ['pruned', 'Pruned'],
];

const NAMES = new Map<EventKind, string>(KINDS);

/** The kind in a word or two. */
export function kindName(kind: EventKind): string {
  return NAMES.get(kind) ?? kind;
}

/** Kinds a person should look at: the token may be in someone else's hands. */
export function isAlarm(kind: EventKind): boolean {
  return kind === 'leaked' || kind === 'reported' || kind === 'reuse_detected';
}

/** What the kind's name does not say already ('' when nothing): where a leak was found, who
 *  reused a token (the token's label, and the other token of a rotation, are shown beside). */
export function eventSentence(event: ActivityEvent): string {
  switch (event.kind) {
    case 'created':
    case 'activated':
    case 'deactivated':
    case 'deleted':
    case 'expired':
    case 'rotated':
      return '';
    case 'relabelled': return 'Given a new label.';
    case 'pruned': return 'Deleted by the server: the account had more than five auto tokens.';
    case 'leaked':
      return `Found in public${event.url ? ` at ${event.url}` : ''}${event.source ? ` (${event.source})` : ''} and deactivated.`;
    case 'reported': return 'Reported through the public revocation and deactivated.';
    case 'reuse_detected':
      return `Used after its rotation's overlap ended, and refused${event.address ? `: from ${event.address}` : ''}${event.user_agent ? ` (${event.user_agent})` : ''}.`;
    case 'new_address':
      return `Used from an address it had never been used from${event.address ? `: ${event.address}` : ''}${event.user_agent ? ` (${event.user_agent})` : ''}.`;
  }
}
