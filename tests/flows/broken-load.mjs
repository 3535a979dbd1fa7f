// Test flow whose module throws while it loads.

throw new Error('boom while loading');
