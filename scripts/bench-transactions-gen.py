import hashlib, random, sys, datetime
# P4's TRNLOG: 60 % known HPANs, 10 % tokens, 5 % unknown hashes with a known PAR, 24 % unknown,
# 1 % reversals of an earlier payment of the file (same amount, merchant, terminal).
rows, cards, tokens, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rnd = random.Random(4)
h = lambda s: hashlib.sha256(s.encode()).hexdigest()
day = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=20)).strftime("%Y-%m-%dT%H:%M:%S.000+00:00")
recent = []
with open(path, "w", buffering=1 << 22) as f:
    for i in range(rows):
        k = i % 100
        par, op = "", "00"
        if k < 60:
            hp = h(f"card{rnd.randint(1, cards)}")
        elif k < 70:
            hp = h(f"token{rnd.randint(1, tokens)}")
        elif k < 75:
            hp = h(f"new{i}")
            par = "V001" + str(rnd.randint(1, cards // 2)).zfill(25)
        elif k < 99:
            hp = h(f"nobody{i}")
        else:
            op = "01"
            hp, amount, merchant = recent[rnd.randrange(len(recent))] if recent else (h("card1"), 100, "m0")
        if op == "00":
            amount, merchant = 100 + i % 5000, f"m{i % 997}"
            if k < 60 and len(recent) < 100000:
                recent.append((hp, amount, merchant))
        f.write(f"99999;{op};01;{hp};{day};t{i};;;{amount};978;acq1;{merchant};term1;40236010;4900;{par}\n")
