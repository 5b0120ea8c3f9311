// A one-line progress bar for terminals: "[#########.........]  4500/10000 rows  45%", redrawn
// at most ten times a second and erased when done. On anything but a terminal it writes nothing.
export interface Progress {
  update(done: number): void;
  /** Erase the bar (before other output, and at the end). */
  clear(): void;
}

export function createProgress(options: {
  total: number;
  label: string;
  write: (text: string) => void;
  enabled: boolean;
  width?: number;
}): Progress {
  const { total, label, write, enabled } = options;
  const width = options.width ?? 30;
  let last = 0;
  let shown = false;
  const draw = (done: number): void => {
    const ratio = total === 0 ? 1 : Math.min(1, done / total);
    const filled = Math.round(ratio * width);
    write(
      `\r[${"#".repeat(filled)}${".".repeat(width - filled)}] ${String(done).padStart(String(total).length)}/${total} ${label} ${String(Math.floor(ratio * 100)).padStart(3)}%`,
    );
    shown = true;
  };
  return {
    update(done) {
      if (!enabled) return;
      const now = performance.now();
      if (done < total && now - last < 100) return;
      last = now;
      draw(done);
    },
    clear() {
      if (!enabled || !shown) return;
      write("\r\x1b[2K");
      shown = false;
    },
  };
}
