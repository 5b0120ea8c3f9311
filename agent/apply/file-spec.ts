// What the agent wants on disk for one managed file: full content, mode and owner.
export interface FileSpec {
  readonly content: string;
  readonly mode: number;
  /** Owner; undefined keeps root:root (the agent runs as root). */
  readonly uid?: number;
  readonly gid?: number;
}

/** Managed files keyed by their absolute live path. */
export type FileSet = Map<string, FileSpec>;
