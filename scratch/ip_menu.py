import torch, time
from bundleflow.cats_io import load_cats_npz
from bundleflow.baselines import item_pricing, optimise_prices, grand_bundling
from bundleflow.menu import Menu, evaluate_menu, expected_values
import sys
name=sys.argv[1]
v,_=load_cats_npz(f'../shared/cats/{name}_single.npz')
g=torch.Generator().manual_seed(0); perm=torch.randperm(len(v),generator=g)
tr=v.subset(perm[:3000]); te=v.subset(perm[4000:5000])
t=time.time(); ip=item_pricing(tr); print('ip',ip.revenue, ip.evaluate(te), time.time()-t)
p=ip.item_prices.double()
# demand bundle per training bidder: best atom
val=tr.values; atoms=tr.atoms.double()
u=val-(atoms@p); best=u.argmax(1)
db=tr.atoms[torch.arange(len(tr)),best]
ok=u.max(1).values>0
uniq,cnt=torch.unique(db[ok].float(),dim=0,return_counts=True)
print('distinct demand bundles',len(uniq),'of',ok.sum().item())
order=torch.argsort(cnt,descending=True)
cap=tr.max_value()
for J in (128,512,2048):
    B=torch.cat([torch.ones(1,tr.n_items),uniq[order[:J-1]]])
    pr=(B.double()@p)
    pr[0]=min(pr[0],cap)
    menu=Menu(B[:,None,:],torch.ones(len(B),1,dtype=torch.float64),pr.clamp(max=cap))
    r0=evaluate_menu(menu,tr).revenue; r0t=evaluate_menu(menu,te).revenue
    ev=expected_values(menu,tr)
    t=time.time();pr2=optimise_prices(ev,pr.clone(),cap,2)
    m2=Menu(menu.bundles,menu.probs,pr2)
    print(J,'additive',r0,r0t,'optimised',evaluate_menu(m2,tr).revenue,evaluate_menu(m2,te).revenue,time.time()-t)
