// node:assert/strict for flowhost guests.
'use strict';

module.exports = require('../assert.js').strict;
