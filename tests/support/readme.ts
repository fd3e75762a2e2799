import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const README = fileURLToPath(new URL('../../README.md', import.meta.url));

/** The text of one `## ` section of README.md, heading excluded. */
export function readmeSection(heading: string): string {
  const text = readFileSync(README, 'utf8');
  const start = text.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no section "## ${heading}"`);
  const body = text.slice(start + heading.length + 5);
  const end = body.search(/\n## /);
  return end < 0 ? body : body.slice(0, end);
}

/** The ```sh blocks of a piece of Markdown, in order. */
export function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
}

/** Every `npx buf curl …` command of README.md (continuation lines joined), as a user would paste it. */
export function bufCurlCommands(): string[] {
  const text = readFileSync(README, 'utf8').replace(/\\\n\s*/g, '');
  return [...text.matchAll(/^(npx buf curl .*)$/gm)].map((match) => match[1] ?? '');
}
