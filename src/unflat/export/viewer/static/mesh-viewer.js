// unflat viewer: orbit view of one GLB (drag: rotate, wheel: zoom, right-drag: pan).
// Uses the three.js files vendored next to this one (MIT, see LICENSE): no network needed.
// The page reports its state in <body data-status="loading|loaded|error"> for tests and users.
import * as THREE from './three.module.min.js';
import { OrbitControls } from './OrbitControls.js';
import { GLTFLoader } from './GLTFLoader.js';

const statusLine = document.getElementById('status');
function report(status, message) {
  document.body.dataset.status = status;
  if (message) document.body.dataset.message = message;
  statusLine.textContent = message || status;
}
window.addEventListener('error', (event) => report('error', String(event.message)));
window.addEventListener('unhandledrejection', (event) => report('error', String(event.reason)));

const viewport = document.getElementById('viewport');
const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio);
renderer.setSize(viewport.clientWidth, viewport.clientHeight);
renderer.outputColorSpace = THREE.SRGBColorSpace;
viewport.appendChild(renderer.domElement);

const scene = new THREE.Scene();
scene.background = new THREE.Color(0xe9e9e6);
scene.add(new THREE.HemisphereLight(0xffffff, 0x666666, 2.0));
const sun = new THREE.DirectionalLight(0xffffff, 1.5);
sun.position.set(2, 4, 3);
scene.add(sun);

// unflat's world is +Y up with objects in [-1, 1]^3; start on +Z, slightly above (as turntables do).
const camera = new THREE.PerspectiveCamera(30, viewport.clientWidth / viewport.clientHeight, 0.01, 100);
camera.position.set(0, 0.9, 2.5);
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = true;
const autorotate = document.getElementById('autorotate');
controls.autoRotate = autorotate ? autorotate.checked : false;
if (autorotate) autorotate.addEventListener('change', () => { controls.autoRotate = autorotate.checked; });

function frame(object) {
  // Fit the whole object in view whatever its scale.
  const box = new THREE.Box3().setFromObject(object);
  const centre = box.getCenter(new THREE.Vector3());
  const radius = Math.max(box.getSize(new THREE.Vector3()).length() / 2, 1e-3);
  const distance = radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2)) * 1.1;
  const direction = new THREE.Vector3(0, 0.35, 1).normalize();
  camera.position.copy(centre).addScaledVector(direction, distance);
  camera.near = distance / 100;
  camera.far = distance * 100;
  camera.updateProjectionMatrix();
  controls.target.copy(centre);
  controls.update();
}

report('loading', 'loading ' + viewport.dataset.mesh);
new GLTFLoader().load(
  viewport.dataset.mesh,
  (gltf) => {
    scene.add(gltf.scene);
    frame(gltf.scene);
    let triangles = 0;
    gltf.scene.traverse((node) => {
      if (node.isMesh) triangles += (node.geometry.index ? node.geometry.index.count : node.geometry.attributes.position.count) / 3;
    });
    report('loaded', `${triangles} triangles`);
  },
  undefined,
  (error) => report('error', 'could not load mesh: ' + (error.message || error)),
);

window.addEventListener('resize', () => {
  camera.aspect = viewport.clientWidth / viewport.clientHeight;
  camera.updateProjectionMatrix();
  renderer.setSize(viewport.clientWidth, viewport.clientHeight);
});
renderer.setAnimationLoop(() => {
  controls.update();
  renderer.render(scene, camera);
});
