// The link code as a QR code: an SVG path drawn from the `qrcode` package's module matrix, so
// it is an image (no script, no inline style) that the CSP's `img-src data:` allows.
import QRCode from 'qrcode';

/** Modules of quiet zone around the symbol (the standard asks for 4). */
export const QUIET = 4;

/** The QR symbol's dark modules as `[size, isDark(x, y)]`. */
export function qrMatrix(text: string): { size: number; dark: (x: number, y: number) => boolean } {
  const qr = QRCode.create(text, { errorCorrectionLevel: 'M' });
  const { size, data } = qr.modules;
  return { size, dark: (x, y) => Boolean(data[y * size + x]) };
}

/** A square SVG (one path, one unit per module) with the quiet zone included. */
export function qrSvg(text: string): string {
  const { size, dark } = qrMatrix(text);
  let d = '';
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (dark(x, y)) d += `M${x + QUIET} ${y + QUIET}h1v1h-1z`;
    }
  }
  const full = size + 2 * QUIET;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${full} ${full}" shape-rendering="crispEdges">` +
    `<rect width="${full}" height="${full}" fill="#fff"/><path d="${d}" fill="#000"/></svg>`
  );
}

export function svgDataUrl(svg: string): string {
  return 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(svg);
}
