// The client library as a front end on another origin uses it: pointed at the BFF.
import * as bff from '/bff.js';
import { bffUrl } from '/config.js';

bff.configure({ baseUrl: bffUrl });
window.bff = bff;
