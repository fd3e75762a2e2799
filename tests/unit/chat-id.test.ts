import { describe, expect, it } from 'vitest';
import { chatId } from '../../src/messaging/chat-id.js';

describe('chat ids', () => {
  it.each([
    ['+15551234567', '15551234567@s.whatsapp.net'],
    ['15551234567', '15551234567@s.whatsapp.net'],
    [' +15551234567 ', '15551234567@s.whatsapp.net'],
    ['15551234567@s.whatsapp.net', '15551234567@s.whatsapp.net'],
    ['120363025246125486@g.us', '120363025246125486@g.us'],
    ['+0123456789', '+0123456789'],
    ['12345', '12345'],
    ['A', 'A'],
  ])('spells %j as %j', (given, expected) => {
    expect(chatId(given)).toBe(expected);
  });
});
