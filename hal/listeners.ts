/**
 * A set of change listeners, as the devices and ports expose them: `add` returns the function
 * that removes the listener again, so a caller can stop watching without keeping a reference.
 */
export class Listeners<T> {
  private readonly listeners = new Set<(value: T) => void>();

  add(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  emit(value: T): void {
    // A copy: a listener may remove itself (or another) while being called.
    for (const listener of [...this.listeners]) listener(value);
  }

  clear(): void {
    this.listeners.clear();
  }
}
