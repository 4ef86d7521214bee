import { useCallback, useState } from "react";

/** The errors shown to the person: the last five messages, until dismissed. */
export function useErrors(): { errors: string[]; report: (error: unknown) => void; dismiss: () => void } {
  const [errors, setErrors] = useState<string[]>([]);
  const report = useCallback((error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    setErrors((all) => [...all.slice(-4), message]);
  }, []);
  const dismiss = useCallback(() => setErrors([]), []);
  return { errors, report, dismiss };
}
