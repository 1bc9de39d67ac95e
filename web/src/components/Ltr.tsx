import type { ComponentChildren } from 'preact';

/** Numbers, phone numbers and codes keep their left-to-right order inside Arabic text. */
export function Ltr({ children }: { children: ComponentChildren }) {
  return <bdi dir="ltr">{children}</bdi>;
}
