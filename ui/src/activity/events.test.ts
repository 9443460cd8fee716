import { describe, expect, it } from 'vitest';
import type { ActivityEvent } from '../lib/ipc';
import { eventSentence, isAlarm, kindName, KINDS } from './events';

function event(change: Partial<ActivityEvent>): ActivityEvent {
  return {
    cursor: '1', kind: 'created', token_uuid: 'a', token_label: 'ci', origin: 'manual', at: '2031-01-01T00:00:00Z',
    url: null, source: null, address: null, user_agent: null, related_token: null, ...change,
  };
}

describe('events', () => {
  it('names every kind once', () => {
    expect(new Set(KINDS.map(([kind]) => kind)).size).toBe(12);
    expect(kindName('reuse_detected')).toBe('Reuse detected');
    expect(isAlarm('leaked') && isAlarm('reuse_detected') && !isAlarm('created')).toBe(true);
  });

  it('says where a leak was found and who reused a token', () => {
    expect(eventSentence(event({ kind: 'leaked', url: 'https://x.test/a', source: 'commit' })))
      .toBe('Found in public at https://x.test/a (commit) and deactivated.');
    expect(eventSentence(event({ kind: 'reuse_detected', address: '10.0.0.9', user_agent: 'docker/28' })))
      .toBe("Used after its rotation's overlap ended, and refused: from 10.0.0.9 (docker/28).");
  });

});
