// The Security screen's export: which format is being written, and what came of the last
// one. The save dialog is opened by the Rust side; this only runs the command and keeps its
// outcome for the toolbar.
import { asCommandError, type ExportFormat, type ExportReport, type ipc } from '../lib/ipc';

/** The command the export uses (the real `ipc`, or a fake in the unit tests). */
export type ExportCommands = Pick<typeof ipc, 'exportTokens'>;

export class TokenExport {
  /** The format being written, or null when idle. */
  exporting: ExportFormat | null = $state(null);
  /** The last export written (null too when the person cancelled the save dialog). */
  exported: ExportReport | null = $state(null);
  /** Why the last export failed. */
  error: string | null = $state(null);

  readonly #commands: ExportCommands;

  constructor(commands: ExportCommands) {
    this.#commands = commands;
  }

  /** Writes every token as `format` where the save dialog says. */
  async run(format: ExportFormat) {
    this.exporting = format;
    this.exported = null;
    this.error = null;
    try {
      this.exported = await this.#commands.exportTokens(format);
    } catch (failure) {
      this.error = asCommandError(failure).message;
    } finally {
      this.exporting = null;
    }
  }
}

/** "3 tokens", "1 token". */
export function tokenCount(count: number): string {
  return `${count} ${count === 1 ? 'token' : 'tokens'}`;
}
