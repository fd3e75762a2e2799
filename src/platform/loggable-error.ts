/**
 * What of an error goes to the logs. Database driver errors quote the failed
 * SQL with its parameters inlined (worker metrics, tokens, message text,
 * sealed keys): keep only the database's own message, its SQLSTATE and the
 * stack.
 */
export function loggableError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const database = databaseMessage(error);
  if (!database) return error;
  return {
    ...database,
    // Only the frames: the stack starts with the message, and a statement spans many lines.
    stack: error.stack
      ?.split('\n')
      .filter((line) => /^\s+at /.test(line))
      .join('\n'),
  };
}

/**
 * An error as one line for an operator (a command's last words, a start
 * that failed): the database's own message for driver errors, never the
 * statement they quote.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return singleLine(String(error));
  const database = databaseMessage(error);
  if (!database) return singleLine(`${error.name}: ${error.message}`);
  const code = typeof database.code === 'string' ? ` (SQLSTATE ${database.code})` : '';
  return singleLine(`${database.name}: ${database.message}${code}`);
}

function databaseMessage(error: Error): { name: string; code: unknown; message: string } | undefined {
  const quotesSql = error.message.includes(' - ') || /^\s*(insert|update|delete|select|with)\b/i.test(error.message);
  if (!quotesSql) return undefined;
  const sqlState = (error as { sqlState?: unknown; code?: unknown }).sqlState ?? (error as { code?: unknown }).code;
  const at = error.message.lastIndexOf(' - ');
  return {
    name: error.constructor.name,
    code: sqlState,
    message: at >= 0 ? error.message.slice(at + 3) : 'database error (statement not logged)',
  };
}

const singleLine = (text: string) => text.replace(/\s*\n\s*/g, ' ').trim();
