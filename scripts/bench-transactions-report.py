import json, sys
# P4's report line: tkm against the slower of the two limits measured in the same run.
core, rows, tkm, rss, copy = json.loads(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
copy_rate = rows / copy
limit = min(core["csv_rows_per_s"], copy_rate)
print("| rows | tkm s | rows/s | peak RSS MB | snapshot load s | snapshot RSS MB | core rows/s (1 core) | limit: csv rows/s | limit: COPY rows/s | ratio |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {rows:,} | **{tkm:.1f}** | {rows / tkm:,.0f} | {rss / 1024:.0f} | {core['snapshot_load_s']:.1f} | {core['rss_after_snapshot_mib']} | {core['core_rows_per_s']:,.0f} | {core['csv_rows_per_s']:,.0f} | {copy_rate:,.0f} | **{rows / tkm / limit:.2f}** |")
