// unflat viewer: ask the attached backend (e.g. a trained generator) for a sample by seed/class.
const form = document.getElementById('sampler');
const image = document.getElementById('sample');
const status = document.getElementById('sample-status');

function render() {
  const params = new URLSearchParams();
  params.set('seed', form.elements.seed.value || '0');
  if (form.elements.class.value !== '') params.set('class', form.elements.class.value);
  status.textContent = 'rendering...';
  image.src = '/api/sample?' + params.toString();
}
image.addEventListener('load', () => { status.textContent = ''; });
image.addEventListener('error', () => { status.textContent = 'the backend could not render this sample'; });
form.addEventListener('submit', (event) => { event.preventDefault(); render(); });
document.getElementById('random-seed').addEventListener('click', () => {
  form.elements.seed.value = Math.floor(Math.random() * 1e6);
  render();
});
render();
