/**
 * What of an error goes to the logs. Database driver errors quote the failed
 * SQL with its parameters inlined (worker metrics, tokens, message text):
 * keep only the database's own message, its SQLSTATE and the stack.
 */
export function loggableError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const sqlState = (error as { sqlState?: unknown; code?: unknown }).sqlState ?? (error as { code?: unknown }).code;
  const quotesSql = error.message.includes(' - ') || /^\s*(insert|update|delete|select|with)\b/i.test(error.message);
  if (!quotesSql) return error;
  const at = error.message.lastIndexOf(' - ');
  return {
    name: error.constructor.name,
    code: sqlState,
    message: at >= 0 ? error.message.slice(at + 3) : 'database error (statement not logged)',
    // Only the frames: the stack starts with the message, and a statement spans many lines.
    stack: error.stack
      ?.split('\n')
      .filter((line) => /^\s+at /.test(line))
      .join('\n'),
  };
}
