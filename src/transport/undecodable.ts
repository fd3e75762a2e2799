/** The TextDecoder's own words for invalid UTF-8, which Connect passes on as the whole message. */
const INVALID_UTF8 = /not valid for encoding utf-8/i;

/**
 * What to tell a caller whose request could not be decoded, or undefined
 * when the error is not such a failure. Connect reports undecodable binary
 * protobuf as INTERNAL "parse binary: …" (it is the caller's bytes:
 * INVALID_ARGUMENT), and JSON that is not UTF-8 with the decoder's bare
 * sentence, which does not say what could not be read. `code` is Connect's
 * lower-case code name.
 */
export function undecodableMessage(inputType: string, code: string, message: string): string | undefined {
  if (code === 'internal' && message.startsWith('parse binary')) {
    return `the request is not a valid ${inputType}: ${message.replace(/^parse binary:\s*/, '')}`;
  }
  if (code === 'invalid_argument' && INVALID_UTF8.test(message)) {
    return 'the request body is not valid JSON text (invalid UTF-8)';
  }
  return undefined;
}
