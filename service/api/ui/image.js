// Inputs that are an image (features named pixel_<row>_<column>, a square grid such as the 8x8
// digits) are also drawn as a picture beside their number fields, which stay editable: typing
// redraws the picture, and clicking a pixel turns it on (to the brightest value) or off.

const SVG = "http://www.w3.org/2000/svg";
const PIXEL = /^pixel_(\d+)_(\d+)$/;
const CELL = 16; // px per pixel

/** The side of the square image the features form, in row-major order, or 0 if they are not one. */
export function imageSide(features) {
  const side = Math.round(Math.sqrt(features.length));
  if (side < 2 || side * side !== features.length) return 0;
  const inOrder = features.every((name, i) => {
    const match = name.match(PIXEL);
    return match && Number(match[1]) === Math.floor(i / side) && Number(match[2]) === i % side;
  });
  return inOrder ? side : 0;
}

function brightest(examples) {
  let top = 0;
  for (const row of examples) for (const value of row) if (value > top) top = value;
  return top > 0 ? top : 1;
}

/**
 * A picture of the image fields, kept in step with them.
 * @param {number} side pixels per row and column
 * @param {number[][]} examples the model's example rows, whose largest value is white
 * @param {(i: number) => HTMLInputElement} field the number field of pixel i
 * @param {() => void} changed called after a click changed a field
 */
export function pixelPicture(side, examples, field, changed) {
  const top = brightest(examples);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "pixels");
  svg.setAttribute("viewBox", `0 0 ${side * CELL} ${side * CELL}`);
  svg.setAttribute("width", String(side * CELL));
  svg.setAttribute("height", String(side * CELL));
  svg.setAttribute("role", "img");
  const cells = [];
  for (let i = 0; i < side * side; i += 1) {
    const cell = document.createElementNS(SVG, "rect");
    cell.setAttribute("x", String((i % side) * CELL));
    cell.setAttribute("y", String(Math.floor(i / side) * CELL));
    cell.setAttribute("width", String(CELL));
    cell.setAttribute("height", String(CELL));
    cell.setAttribute("class", "pixel");
    cell.dataset.index = String(i);
    cell.addEventListener("click", () => {
      const value = Number(field(i).value);
      field(i).value = String(Number.isFinite(value) && value >= top / 2 ? 0 : top);
      redraw();
      changed();
    });
    cells.push(cell);
    svg.append(cell);
  }
  function redraw() {
    cells.forEach((cell, i) => {
      const value = Number(field(i).value);
      // Ink on paper, as the digits were written: 0 white, the brightest value black.
      const shade = Number.isFinite(value) ? Math.max(0, Math.min(1, value / top)) : 0;
      const level = Math.round(255 * (1 - shade));
      cell.setAttribute("fill", `rgb(${level},${level},${level})`);
      cell.dataset.value = Number.isFinite(value) ? String(value) : "";
    });
    svg.setAttribute("aria-label", `the ${side}x${side} input drawn as an image, dark where the value is high`);
  }
  redraw();
  return { node: svg, redraw };
}
